#!/usr/bin/env bash
# Install what is missing, start Dockyard, deploy the example service and print the URLs.
# Ctrl-C stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/dockyard up --example "$@"
