#!/usr/bin/env bash
# make bench: the benchmark (vtex-relay vs plain Celery) on Redis and a sandbox of its own.
# Arguments go to `python -m bench` (e.g. --quick). The table is also written to bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/bootstrap.sh
source scripts/bootstrap.sh
ensure_venv
ensure_redis_server
exec .venv/bin/python -m bench "$@"
