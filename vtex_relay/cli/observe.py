"""``vtex-relay health`` (for probes and operators), ``vtex-relay metrics`` (the Prometheus
exporter, for hosts that run only workers) and ``vtex-relay migrate`` (the key layout)."""

import json
import signal
import threading

import click
from prometheus_client import CollectorRegistry, start_http_server

from vtex_relay.cli.console import clean_errors, fail, listening
from vtex_relay.cli.dlq import json_option, operator_client
from vtex_relay.ops.health import Health, check
from vtex_relay.ops.metrics import RedisCollector
from vtex_relay.settings import get_settings
from vtex_relay.store import connections


@click.command("health")
@json_option
@click.option("--worker", help="Check this worker (its Celery node name) rather than any.")
def health(as_json: bool, worker: str | None) -> None:
    """Exit 0 if Redis answers, a worker's heartbeat is fresh and a sweep ran, both within
    HEARTBEAT_TIMEOUT (30 s); else exit 1 naming what failed."""
    with clean_errors():
        settings = get_settings()
    found = check(operator_client(), settings.heartbeat_timeout, worker)
    if as_json:
        click.echo(json.dumps(_json(found)))
    else:
        live = [w.name for w in found.workers if w.live]
        if not found.problems:
            sweep = f"{found.sweep_age:.1f}" if found.sweep_age is not None else "?"
            click.echo(
                f"ok: Redis answers; {len(live)} live worker(s) ({', '.join(live)}); "
                f"last sweep {sweep} s ago"
            )
    if found.problems:
        fail(1, "unhealthy: " + "; ".join(found.problems))


def _json(found: Health) -> dict[str, object]:
    return {
        "healthy": not found.problems,
        "redis": found.redis,
        "workers": [
            {"name": w.name, "ageSeconds": round(w.age, 3), "live": w.live} for w in found.workers
        ],
        "sweepAgeSeconds": None if found.sweep_age is None else round(found.sweep_age, 3),
        "problems": found.problems,
    }


@click.command("metrics")
@listening(9808)
def metrics(host: str, port: int) -> None:
    """Serve the relay's metrics at /metrics in Prometheus' text format, read from Redis at
    each scrape (the intake serves the same at its own /metrics)."""
    with clean_errors():
        settings = get_settings()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(connections.redis_client(), settings))
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        fail(2, f"cannot listen on {host}:{port} ({exc.strerror or exc})")
    click.echo(f"metrics on http://{host}:{server.server_port}/metrics", err=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


@click.command("migrate")
def migrate() -> None:
    """Bring a Redis written by the previous version to this version's key layout (run it once,
    with every worker, producer and intake stopped; running it again does no harm)."""
    from vtex_relay.store.migrate import migrate as run_migration

    with clean_errors():
        get_settings()
        done = run_migration(operator_client())
    click.echo(done)
