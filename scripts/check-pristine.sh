#!/usr/bin/env bash
# Prove that scripts/install.sh --dev, on a fresh Debian bookworm, installs every program Dockyard and
# its tests run (the list in core/programs.py): debootstrap a minbase root, copy this checkout in
# (without .venv and .git), run the install in the root in its own PID and mount namespaces, then look
# up every listed program there. Fails naming each missing program. Nothing is cached between runs.
# Run as root.
#
#   DEBIAN_MIRROR            default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR   default http://deb.debian.org/debian-security
#   PYTHON                   the interpreter that reads the list here (default python3)
#
# The machine's network settings go in with the root: its CA bundle (a TLS-inspecting proxy may sit
# between it and the package registries) at a path Debian's ca-certificates never rewrites, apt's
# proxy and release-validity settings, and pip's index, proxy and timeout settings. Indexes on
# this machine's own disk (file:// URLs, find-links directories) stay out: a fresh machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "check-pristine: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ $EUID -eq 0 ]] || die "needs root (debootstrap, chroot, namespaces)"
for tool in debootstrap unshare chroot; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install.sh installs it)"
done
python="${PYTHON:-python3}"
mapfile -t programs < <("$python" -m core.programs programs --dev)
((${#programs[@]})) || die "core/programs.py listed no programs"

suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
ca_in_root=/opt/host-ca/ca-certificates.crt
started=$SECONDS

work="$(mktemp -d "${TMPDIR:-/var/tmp}/dockyard-pristine.XXXXXX")"
root="$work/root"
cleanup() {
  # The namespace's mounts end with it; these are only what an interrupted run could leave behind.
  awk -v root="$work/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n 1 umount -l || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A second try from scratch when the mirror drops a connection: it downloads anew, so it hides nothing.
for try in 1 2; do
  log "debootstrap --variant=minbase $suite from $mirror (try $try)"
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 && break
  tail -n 20 "$work/debootstrap.log" >&2
  ((try < 2)) || die "debootstrap failed"
  rm -rf --one-file-system "$root"
done
log "pristine root ready after $((SECONDS - started)) s"

{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  echo "deb $security_mirror $suite-security main"
} >"$root/etc/apt/sources.list"
mapfile -t apt_settings < <(grep -liE '^[[:space:]]*Acquire::([a-z]+::)?(proxy|check-valid-until|check-date)' \
  /etc/apt/apt.conf.d/* 2>/dev/null || true)
((${#apt_settings[@]} == 0)) || cp "${apt_settings[@]}" "$root/etc/apt/apt.conf.d/"
echo 'Acquire::Retries "3";' >"$root/etc/apt/apt.conf.d/80retries" # a dropped download is tried again
cp /etc/resolv.conf "$root/etc/resolv.conf"
install -D -m 644 /etc/ssl/certs/ca-certificates.crt "$root$ca_in_root"

# pip's setting $1 (e.g. index-url) as this machine gives it: its PIP_* variable, else pip's config files.
pip_setting() {
  local variable="PIP_${1^^}"
  variable="${variable//-/_}"
  if [[ -n "${!variable:-}" ]]; then
    echo "${!variable}"
  elif [[ -x .venv/bin/pip ]]; then
    .venv/bin/pip config get "global.$1" 2>/dev/null || true
  fi
}
remote_only() { tr ' ' '\n' | grep -E '^https?://' | paste -sd ' ' || true; }

environment=(
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
  DEBIAN_FRONTEND=noninteractive
  PIP_CERT="$ca_in_root" SSL_CERT_FILE="$ca_in_root" REQUESTS_CA_BUNDLE="$ca_in_root"
)
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [[ -z "${!name:-}" ]] || environment+=("$name=${!name}")
done
for setting in index-url extra-index-url trusted-host proxy default-timeout retries; do
  value="$(pip_setting "$setting")"
  case "$setting" in *url) value="$(remote_only <<<"$value")" ;; esac
  variable="PIP_${setting^^}"
  [[ -z "$value" ]] || environment+=("${variable//-/_}=$value")
done

log "settings given to the root: ${environment[*]:3} apt.conf.d: ${apt_settings[*]##*/}"

mkdir "$root/src"
tar -C . --exclude=.venv --exclude=.git --exclude=__pycache__ --exclude='*.egg-info' --exclude=.dockyard \
  --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache -cf - . | tar -C "$root/src" -xf -

cat >"$root/check-programs.sh" <<'EOF'
#!/bin/bash
# Inside the pristine root: the install, then every listed program looked up (also after a failed
# install). This script is PID 1 of the namespace: any other process is a service a package started.
cd /src
scripts/install.sh --dev
status=$?
PATH="/src/.venv/bin:$PATH"
for program in "$@"; do
  command -v "$program" >/dev/null || { echo "MISSING $program"; status=1; }
done
for entry in /proc/[0-9]*; do
  [[ ${entry#/proc/} != "$$" ]] && read -r name <"$entry/comm" 2>/dev/null || continue
  [[ "$(sed -n 's/^State:[[:space:]]*//p' "$entry/status" 2>/dev/null)" != Z* ]] || continue # reaped soon
  echo "STARTED $name (pid ${entry#/proc/}) during the install"
  status=1
done
if [[ -e /usr/sbin/policy-rc.d ]]; then
  echo "LEFT /usr/sbin/policy-rc.d after the install"
  status=1
fi
exit $status
EOF
chmod 755 "$root/check-programs.sh"

log "scripts/install.sh --dev in the root, then ${#programs[@]} programs looked up"
set +e
# Own PID namespace: nothing inside can see or signal this machine's processes, and everything inside
# dies with it (--kill-child). Own mount namespace: /proc and the bind of /dev end with it.
unshare --pid --fork --kill-child --mount-proc="$root/proc" \
  bash -c 'mount --rbind /dev "$1/dev" && mount --make-rslave "$1/dev" && shift && exec chroot "$@"' \
  _ "$root" "$root" /usr/bin/env -i "${environment[@]}" /check-programs.sh "${programs[@]}" \
  >"$work/install.log" 2>&1
status=$?
set -e

mapfile -t missing < <(sed -n 's/^MISSING //p' "$work/install.log")
if ((status != 0)); then
  grep -v '^MISSING ' "$work/install.log" | tail -n 40 >&2
  for program in "${missing[@]}"; do
    log "missing after scripts/install.sh --dev on a pristine $suite: $program"
  done
  die "scripts/install.sh --dev on a pristine $suite: exit $status, ${#missing[@]} listed program(s) missing (the lines above say why)"
fi
grep '^installed: ' "$work/install.log" >&2 || true
log "all ${#programs[@]} programs installed on a pristine $suite in $((SECONDS - started)) s"
