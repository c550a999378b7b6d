#!/usr/bin/env bash
# make bench: the benchmark (vtex-relay vs plain Celery) on Redis and a sandbox of its own.
# Arguments go to `python -m bench` (e.g. --quick). The table is also written to bench/results.md;
# then `python -m bench.intake` writes the intake's to bench/intake.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/bootstrap.sh
source scripts/bootstrap.sh
ensure_venv
ensure_redis_server
if ! command -v wrk >/dev/null 2>&1; then  # the intake's load generator (bench/intake.py)
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq wrk >/dev/null
fi
.venv/bin/python -m bench "$@"
# The HTTP intake against the Python API, in the same run: bench/intake.md.
exec .venv/bin/python -m bench.intake
