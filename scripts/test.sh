#!/usr/bin/env bash
# Install everything the tests need and run them. The test set-up starts the real components
# (Docker Engine, Temporal, registry, Traefik, PostgreSQL, Redis) itself.
#
#   scripts/test.sh                  lint + the whole suite
#   scripts/test.sh -q -k rollback   the whole suite, with any pytest options
#   scripts/test.sh tests/unit -q    the tests named, in one pytest
#
# The whole suite runs in two lanes at once: tests/unit, tests/workflows and tests/integration/api (no
# Docker, no platform: PostgreSQL, Redis and a Temporal dev server of their own) beside everything else
# (the platform, nodes, builds), which starts with its integration tests and the sample builds so that
# the quiet lane is mostly done before the zero-downtime tests begin. The first lane's output follows
# the second's; either lane failing fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy core domain api workflows activities agent cli

QUIET_LANE=(tests/unit tests/workflows tests/integration/api)
# The other lane, in this order (pytest runs its arguments in order).
PLATFORM_LANE=(tests/integration tests/e2e tests/bench)

# Arguments naming tests (a path under tests/, a file, a node id) run as given, in one pytest.
names_tests() {
  local arg
  for arg in "$@"; do
    case "$arg" in
      -*) ;;
      tests | tests/* | *.py | *::*) return 0 ;;
    esac
  done
  return 1
}

# pytest's exit 5 (nothing collected) fails a run, unless the other lane ran tests.
verdict() {
  local quiet=$1 main=$2
  if ((quiet == 5 && main == 5)); then
    echo "pytest collected no tests: failing" >&2
    return 1
  fi
  ((quiet == 5)) && quiet=0
  ((main == 5)) && main=0
  ((quiet != 0)) && return "$quiet"
  return "$main"
}

set +e
if names_tests "$@"; then
  .venv/bin/pytest "$@"
  status=$?
  if ((status == 5)); then
    echo "pytest collected no tests: failing" >&2
    exit 1
  fi
  exit $status
fi

quiet_log="$(mktemp)"
trap 'rm -f "$quiet_log"' EXIT
.venv/bin/pytest "${QUIET_LANE[@]}" "$@" >"$quiet_log" 2>&1 &
quiet_pid=$!
ignores=()
for path in "${QUIET_LANE[@]}"; do ignores+=("--ignore=$path"); done
.venv/bin/pytest "${PLATFORM_LANE[@]}" "${ignores[@]}" "$@"
main=$?
wait "$quiet_pid"
quiet=$?
echo
echo "=== ${QUIET_LANE[*]} (run beside the tests above) ==="
cat "$quiet_log"
verdict "$quiet" "$main"
