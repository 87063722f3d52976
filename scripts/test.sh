#!/usr/bin/env bash
# Install everything the tests need and run them. The test set-up starts the real components
# (Docker Engine, Temporal, registry, Traefik, PostgreSQL, Redis) itself.
#
#   scripts/test.sh                  lint + the whole suite
#   scripts/test.sh tests/unit -q    any pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy core api workflows activities agent cli
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit $status
