#!/usr/bin/env bash
# The test command (README, .ci/run): set up, lint, type-check, then pytest.
# The tests start their own redis-server on a free port; they never touch port 6379.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_venv
ensure_redis_server
[ "${1:-}" = "--lint-only" ] || ensure_prometheus

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict"
.venv/bin/mypy
[ "${1:-}" = "--lint-only" ] && exit 0

echo "==> pytest"
.venv/bin/python -m pytest "$@"
