#!/usr/bin/env bash
# Build Dockyard's default base image from Debian packages (no public container registry needed) and
# push it to REGISTRY_HOST as REGISTRY_HOST/dockyard/debian:bookworm. See README.md next to this file.
#
#   build-base-images.sh [--force] REGISTRY_HOST [USERNAME PASSWORD]     (PASSWORD "-" reads it from stdin)
#
# Idempotent: the debootstrap rootfs is cached as a tarball under $DOCKYARD_CACHE_DIR (default
# $DOCKYARD_STATE_DIR/cache) and the imported image is kept locally as dockyard/debian:bookworm; both are
# reused until --force. The last line printed on stdout is the pushed image pinned by digest; progress
# goes to stderr.
#
#   DEBIAN_MIRROR            default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR   default http://deb.debian.org/debian-security ("" leaves security updates out)
#   DOCKER                   default /usr/bin/docker
#   EXTRA_CA_DIR             default /usr/local/share/ca-certificates: the *.crt there (the CAs this host
#                            trusts locally: a homelab CA, a TLS-inspecting proxy) are trusted in builds too
set -euo pipefail

usage() {
  echo "usage: $0 [--force] REGISTRY_HOST [USERNAME PASSWORD]   (PASSWORD '-' reads it from stdin)" >&2
  exit 2
}
log() { echo "build-base-images: $*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
positional=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help | --*) usage ;;
    *) positional+=("$arg") ;;
  esac
done
[[ ${#positional[@]} -eq 1 || ${#positional[@]} -eq 3 ]] || usage
registry="${positional[0]}"
username="${positional[1]:-}"
password="${positional[2]:-}"
if [[ "$password" == "-" ]]; then
  IFS= read -r password || true
fi

docker_cli="${DOCKER:-/usr/bin/docker}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
suite=bookworm
arch="$(dpkg --print-architecture)"
cache_dir="${DOCKYARD_CACHE_DIR:-${DOCKYARD_STATE_DIR:-$HOME/.local/state/dockyard}/cache}"
extra_ca_dir="${EXTRA_CA_DIR-/usr/local/share/ca-certificates}"
extra_cas=()
if [[ -n "$extra_ca_dir" && -d "$extra_ca_dir" ]]; then
  mapfile -t extra_cas < <(find "$extra_ca_dir" -maxdepth 2 -name '*.crt' -type f | sort)
fi
# The cached rootfs depends on the CAs baked into it.
ca_hash="$(cat /dev/null "${extra_cas[@]}" | sha256sum | cut -c1-12)"
tarball="$cache_dir/debian-$suite-minbase-$arch-ca$ca_hash.tar"
local_image="dockyard/debian:$suite"
image="$registry/dockyard/debian:$suite"

work="$(mktemp -d "${TMPDIR:-/tmp}/dockyard-base-images.XXXXXX")"
cleanup() {
  # An interrupted debootstrap leaves /proc and /sys (maybe a bind of /dev) mounted in the rootfs: unmount
  # them first, and never let rm cross into another filesystem.
  awk -v root="$work/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n 1 umount -l || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

build_rootfs_tarball() {
  [[ $EUID -eq 0 ]] || die "debootstrap needs root (or reuse a cached $tarball)"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  local rootfs="$work/rootfs"
  log "debootstrap --variant=minbase $suite from $mirror (about 25 s)"
  debootstrap --variant=minbase --include=ca-certificates --arch="$arch" "$suite" "$rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  if ((${#extra_cas[@]})); then
    log "trusting ${#extra_cas[@]} extra CA certificate(s) from $extra_ca_dir"
    mkdir -p "$rootfs/usr/local/share/ca-certificates/dockyard"
    cp "${extra_cas[@]}" "$rootfs/usr/local/share/ca-certificates/dockyard/"
    chroot "$rootfs" update-ca-certificates >"$work/update-ca.log" 2>&1 ||
      { cat "$work/update-ca.log" >&2; die "update-ca-certificates failed"; }
  fi
  {
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [[ -z "$security_mirror" ]] || echo "deb $security_mirror $suite-security main"
  } >"$rootfs/etc/apt/sources.list"
  # Docker provides these at run time; the apt lists and .debs only make the image larger.
  rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  rm -rf "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  mkdir -p "$cache_dir"
  tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$tarball.$$.tmp" .
  mv -f "$tarball.$$.tmp" "$tarball"
  log "cached the rootfs as $tarball"
}

import_image() {
  log "importing $tarball as $local_image"
  "$docker_cli" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV DEBIAN_FRONTEND=noninteractive' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV UV_NATIVE_TLS=1' \
    --change 'LABEL org.opencontainers.image.description="Debian bookworm minbase, built by Dockyard"' \
    --change 'CMD ["bash"]' \
    --change "LABEL dockyard.rootfs=$(basename "$tarball")" \
    --message "debootstrap --variant=minbase $suite" \
    "$tarball" "$local_image" >/dev/null
}

# Several runs (CI jobs, test sessions) may share the cache: one builds, the others wait and reuse.
mkdir -p "$cache_dir"
exec 9>"$cache_dir/.debian-$suite.lock"
flock 9
if [[ $force -eq 1 || ! -s "$tarball" ]]; then
  build_rootfs_tarball
  force=1 # a new rootfs means a new image
fi
if [[ $force -eq 1 ]] || [[ "$("$docker_cli" image inspect --format '{{index .Config.Labels "dockyard.rootfs"}}' "$local_image" 2>/dev/null)" != "$(basename "$tarball")" ]]; then
  import_image
else
  log "$local_image exists locally; reusing it (--force rebuilds)"
fi
flock -u 9

"$docker_cli" tag "$local_image" "$image"
# Credentials go to a throw-away client config, never to ~/.docker, and never on a command line.
export DOCKER_CONFIG="$work/docker-config"
mkdir -m 700 "$DOCKER_CONFIG"
if [[ -n "$username" ]]; then
  printf '%s' "$password" | "$docker_cli" login --username "$username" --password-stdin "$registry" \
    >"$work/login.log" 2>&1 || { cat "$work/login.log" >&2; die "docker login to $registry failed"; }
fi
log "pushing $image"
"$docker_cli" push "$image" >"$work/push.log" 2>&1 || { cat "$work/push.log" >&2; die "push of $image failed"; }
digest="$(sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p' "$work/push.log" | tail -n 1)"
[[ -n "$digest" ]] || { cat "$work/push.log" >&2; die "push of $image reported no digest"; }
echo "$registry/dockyard/debian@$digest"
