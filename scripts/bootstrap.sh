# Sourced by run-local.sh and test.sh: make .venv with the project installed, and redis-server.
# Safe to run again: it reinstalls only when pyproject.toml changed.

ensure_venv() {
  local python=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($python --version)"
    "$python" -m venv .venv
  fi
  local stamp
  stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    # [dev]: the worker's dependencies, the extras sandbox, flower and run (honcho), and the
    # test tools: all that make run, make test and make bench use.
    echo "==> installing vtex-relay[dev] into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}

# promtool and a Prometheus server, for the tests of the metrics and the alert rules.
ensure_prometheus() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
  echo "==> prometheus (promtool) is missing: installing it with apt-get"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus \
    >/dev/null || echo "==> could not install prometheus: its tests will say so and skip"
}

ensure_redis_server() {
  command -v redis-server >/dev/null 2>&1 && return 0
  echo "==> redis-server is missing: installing it with apt-get"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  # The Debian package may start a system Redis on 6379; vtex-relay starts its own.
}
