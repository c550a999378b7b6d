#!/usr/bin/env bash
# The README's run command. Starts, on this machine only:
#   Redis (own port, AOF on), the VTEX sandbox, the Procfile's worker, Flower and intake (honcho),
# then enqueues the seed document's three example bodies and shows what the sandbox received,
# then makes one call with curl through the intake, as an ERP would call VTEX.
# Stays up for Flower when run in a terminal (Ctrl-C stops everything); exits otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_venv
ensure_redis_server

REDIS_PORT=${RUN_REDIS_PORT:-6390}
SANDBOX_PORT=${RUN_SANDBOX_PORT:-8765}
export FLOWER_PORT=${FLOWER_PORT:-5555}
export INTAKE_PORT=${INTAKE_PORT:-8080}
export METRICS_PORT=${METRICS_PORT:-9808}
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export VTEX_ACCOUNT=${VTEX_ACCOUNT:-sandboxstore}
export VTEX_APP_KEY=vtexappkey-sandboxstore-LOCAL
export VTEX_APP_TOKEN=local-sandbox-token-not-a-secret
export VTEX_BASE_URL="http://127.0.0.1:${SANDBOX_PORT}/{account}"
export TASK_EVENTS=true  # Flower shows the demo's jobs, even those done before it turns events on
export PATH="$PWD/.venv/bin:$PATH"
RUN_DIR=.run
mkdir -p "$RUN_DIR/redis"

for port in "$REDIS_PORT" "$SANDBOX_PORT" "$FLOWER_PORT" "$INTAKE_PORT" "$METRICS_PORT"; do
  if python -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))!=0)"; then
    echo "port $port is in use: stop what uses it, or set RUN_REDIS_PORT / RUN_SANDBOX_PORT / FLOWER_PORT / INTAKE_PORT / METRICS_PORT" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "==> Redis on 127.0.0.1:${REDIS_PORT} (AOF in ${RUN_DIR}/redis)"
redis-server config/redis-local.conf --port "$REDIS_PORT" --dir "$RUN_DIR/redis" \
  --logfile "$PWD/$RUN_DIR/redis.log" &
pids+=($!)
echo "==> VTEX sandbox on http://127.0.0.1:${SANDBOX_PORT}"
SANDBOX_APP_TOKEN="$VTEX_APP_TOKEN" vtex-relay sandbox --port "$SANDBOX_PORT" --app-key "$VTEX_APP_KEY" --strict-schema \
  >"$RUN_DIR/sandbox.log" 2>&1 &
pids+=($!)
# .run/redis keeps its data between runs: data of the previous key layout is migrated.
wait_for_redis() { for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
wait_for_redis && vtex-relay migrate | sed 's/^/    /'
echo "==> worker, Flower, the intake and the metrics exporter (honcho start; output in ${RUN_DIR}/honcho.log)"
honcho start >"$RUN_DIR/honcho.log" 2>&1 &
pids+=($!)

if ! python scripts/demo.py --sandbox "http://127.0.0.1:${SANDBOX_PORT}" --flower-port "$FLOWER_PORT"; then
  echo "the run failed; last lines of ${RUN_DIR}/honcho.log:" >&2
  tail -n 30 "$RUN_DIR/honcho.log" >&2
  exit 1
fi

if ! python scripts/intake_demo.py --intake "http://127.0.0.1:${INTAKE_PORT}" \
  --sandbox "http://127.0.0.1:${SANDBOX_PORT}"; then
  echo "the intake call failed; last lines of ${RUN_DIR}/honcho.log:" >&2
  tail -n 30 "$RUN_DIR/honcho.log" >&2
  exit 1
fi

echo
echo "==> metrics: http://127.0.0.1:${INTAKE_PORT}/metrics (the intake) and http://127.0.0.1:${METRICS_PORT}/metrics (vtex-relay metrics)"
python - "http://127.0.0.1:${INTAKE_PORT}/metrics" <<'PY'
import sys, httpx
for line in httpx.get(sys.argv[1]).text.splitlines():
    if line.startswith(("vtex_relay_jobs_finished_total{", "vtex_relay_workers ", "vtex_relay_tries_total{")):
        print("   ", line)
PY
echo "==> vtex-relay health"
vtex-relay health || true

if [ -t 0 ] && [ "${RUN_EXIT:-0}" != 1 ]; then
  echo
  echo "Flower: http://127.0.0.1:${FLOWER_PORT}  (press Ctrl-C to stop everything)"
  wait
fi
