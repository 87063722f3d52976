#!/usr/bin/env bash
# Run the benchmarks (they print figures; they assert nothing about time).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --dev >/dev/null
exec .venv/bin/pytest tests/bench -m bench -s -q "$@"
