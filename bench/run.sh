#!/usr/bin/env bash
# make bench: the benchmark (vtex-relay vs plain Celery) on Redis and a sandbox of its own.
# Arguments go to `python -m bench` (e.g. --quick). The table is also written to bench/results.md;
# then bench.metrics_cost, bench.durability, bench.profile, bench.redis_work and bench.intake
# write theirs (bench/*.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/bootstrap.sh
source scripts/bootstrap.sh
ensure_venv
ensure_redis_server
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v wrk >/dev/null 2>&1; then  # the intake's load generator (bench/intake.py)
  $sudo apt-get install -y -qq wrk >/dev/null
fi
if ! command -v valgrind >/dev/null 2>&1; then  # counts Redis's instructions (bench/redis_work.py)
  $sudo apt-get install -y -qq valgrind >/dev/null
fi
.venv/bin/python -m bench "$@"
# What the metrics cost (a scrape at 1,000 accounts; worker CPU with and without them):
# bench/metrics.md. What each durability setting costs in enqueue rate: bench/durability.md.
.venv/bin/python -m bench.metrics_cost
.venv/bin/python -m bench.durability
# Where a worker's CPU goes, per job (py-spy on a worker under load): bench/profile.md.
.venv/bin/python -m bench.profile
# The instructions Redis runs per job, counted (callgrind), with their prices: bench/redis-work.md.
.venv/bin/python -m bench.redis_work
# The HTTP intake against the Python API, in the same run: bench/intake.md.
exec .venv/bin/python -m bench.intake
