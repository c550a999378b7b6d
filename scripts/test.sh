#!/usr/bin/env bash
# The test command (README, .ci/run): set up, lint, type-check, then pytest.
# The tests start their own redis-server on a free port; they never touch port 6379.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_venv
ensure_redis_server
case "${1:-}" in --lint-only | --fast) ;; *) ensure_prometheus ;; esac

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [ "${1:-}" = "--lint-only" ]; then
  echo "==> mypy --strict"
  exec .venv/bin/mypy
fi

# mypy runs beside pytest (the tests mostly wait); its verdict counts as much as theirs.
mypy_log=$(mktemp)
.venv/bin/mypy >"$mypy_log" 2>&1 &
mypy_pid=$!

echo "==> pytest"
# Each xdist process has a Redis, a sandbox and an intake of its own (tests/conftest.py picks
# free ports as it is imported), so tests in different processes share nothing. Most of a
# test's time is waiting on processes and deadlines: 6 processes keep 2 cores busy, and
# worksteal hands the long tests' neighbours to idle processes.
marks=()
if [ "${1:-}" = "--fast" ]; then
  shift
  marks=(-m "not processes")
fi
status=0
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-6}" --dist worksteal "${marks[@]}" "$@" || status=$?
echo "==> mypy --strict"
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
cat "$mypy_log"
rm -f "$mypy_log"
[ "$status" -ne 0 ] && exit "$status"
exit "$mypy_status"
