"""``vtex-relay health``: 0 with a worker up; 1 with Redis stopped; 1 naming each worker once
every worker is stopped or frozen, within HEARTBEAT_TIMEOUT of the last one going; the intake's
/relay/ready follows Redis while /relay/health stays a liveness answer."""

import json
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from click.testing import CliRunner, Result

from tests.harness import Intake
from tests.processes import RedisServer, Worker, wait_for
from vtex_relay.cli.main import cli

TIMEOUT = 2  # HEARTBEAT_TIMEOUT for these tests (default 30 s)


def health(*args: str) -> Result:
    return CliRunner().invoke(cli, ["health", *args])


def health_is(code: int, *args: str) -> Result | None:
    result = health(*args)
    return result if result.exit_code == code else None


def test_healthy_with_a_worker_up(worker: Worker) -> None:
    result = wait_for(lambda: health_is(0), what="a healthy relay")
    assert result.stdout.startswith("ok: Redis answers; 1 live worker(s) (w1@")
    shown = json.loads(health("--json").stdout)
    assert shown["healthy"] is True
    assert [w["name"].split("@")[0] for w in shown["workers"]] == ["w1"]


def test_unhealthy_with_redis_stopped(settings_env: pytest.MonkeyPatch) -> None:
    own = RedisServer().start()
    settings_env.setenv("REDIS_URL", own.url)
    own.stop()
    result = health()
    assert result.exit_code == 1
    assert result.stderr.strip() == "vtex-relay: unhealthy: Redis does not answer (ConnectionError)"
    assert json.loads(health("--json").stdout)["redis"] is False


@pytest.fixture
def two_workers(
    redis_client: redis.Redis, settings_env: pytest.MonkeyPatch
) -> Iterator[list[Worker]]:
    settings_env.setenv("HEARTBEAT_TIMEOUT", str(TIMEOUT))
    env = {**os.environ, "HEARTBEAT_TIMEOUT": str(TIMEOUT)}
    workers = [Worker(env, "hw1"), Worker(env, "hw2")]
    for worker in workers:
        worker.start()
    yield workers
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            os.kill(worker.process.pid, signal.SIGCONT)
        worker.stop()


def test_unhealthy_once_every_worker_is_gone_naming_each(two_workers: list[Worker]) -> None:
    killed, frozen = two_workers
    wait_for(lambda: health().exit_code == 0, what="both workers' heartbeats")
    names = [w["name"] for w in json.loads(health("--json").stdout)["workers"]]
    assert sorted(n.split("@")[0] for n in names) == ["hw1", "hw2"]
    assert killed.process is not None
    assert frozen.process is not None
    killed.stop(signal.SIGKILL)
    os.kill(frozen.process.pid, signal.SIGSTOP)  # a frozen worker: alive, but not working
    gone = time.monotonic()
    result = wait_for(lambda: health_is(1), what="health to turn 1")
    assert time.monotonic() - gone <= TIMEOUT + 2  # the default 30 s: within a minute
    assert "no live worker (last seen: " in result.stderr
    for name in names:
        assert name in result.stderr
    named = health("--worker", names[1])
    assert named.exit_code == 1
    assert f"worker {names[1]} last seen" in named.stderr
    # The frozen one wakes: healthy again, it alone.
    os.kill(frozen.process.pid, signal.SIGCONT)
    wait_for(lambda: health("--worker", frozen_name(names)).exit_code == 0, what="it back")
    unknown = health("--worker", "nobody@nowhere")
    assert "worker nobody@nowhere has never sent a heartbeat" in unknown.stderr


def frozen_name(names: list[str]) -> str:
    return next(name for name in names if name.startswith("hw2@"))


def test_ready_follows_redis_and_health_stays_up() -> None:
    own = RedisServer().start()
    intake = Intake(env={**os.environ, "REDIS_URL": own.url}).start()
    try:
        assert httpx.get(f"{intake.url}/relay/ready").json() == {"status": "ok"}
        own.stop()
        assert httpx.get(f"{intake.url}/relay/ready").status_code == 503
        assert httpx.get(f"{intake.url}/relay/health").json() == {"status": "ok"}
        metrics = httpx.get(f"{intake.url}/metrics")
        assert metrics.status_code == 200
        assert "vtex_relay_redis_up 0.0" in metrics.text
    finally:
        intake.stop()
        own.stop()
