"""Fixtures: a real Redis of the tests' own, the sandbox over real HTTP, real Celery workers.

The settings are put in the environment here, before anything builds them, so the test
process (producers) and its child processes (workers) all point at the test Redis and the
sandbox. The app token is a recognisable string that tests look for where it must not be.
"""

import os
from collections.abc import Iterator

import pytest
import redis

from tests.harness import Intake, Sandbox
from tests.processes import ROOT, RedisServer, Worker, free_port

REDIS_PORT = free_port()
SANDBOX_PORT = free_port()
APP_KEY = "vtexappkey-teststore-ABCDEF"
APP_TOKEN = "TOKEN-must-never-leak-5f1b2c9e7d"
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"

os.environ.update(
    REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/0",
    VTEX_ACCOUNT="teststore",
    VTEX_APP_KEY=APP_KEY,
    VTEX_APP_TOKEN=APP_TOKEN,
    VTEX_BASE_URL=SANDBOX_URL + "/{account}",
    VTEX_TIMEOUT="2",
    # Short waits so that retries and recoveries happen within a test's time.
    RETRY_BACKOFF_BASE="0.05",
    RETRY_MAX_ATTEMPTS="30",  # injected faults must not kill jobs by chance (0.5^8 is not rare)
    RETRY_BACKOFF_MAX="0.5",
    LEASE_SECONDS="11",
    SWEEP_INTERVAL="0.2",
    VTEX_RATE_LIMIT="0",  # no limit, except in the tests of the limit
    # Sandbox orders are created on first use with a total of 10,000 cents, which most tests'
    # invoices do not match: the check is on in its own tests (test_order_total.py).
    VERIFY_ORDER_TOTAL="false",
)

from vtex_relay.sandbox import SandboxControl  # noqa: E402 - after the settings are set
from vtex_relay.settings import get_settings  # noqa: E402

# Fixtures that start real processes: a test using any of them (directly or through another
# fixture) is marked "processes", which `make test-fast` leaves out.
PROCESS_FIXTURES = {"redis_server", "sandbox_process", "intake_process"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(REDIS_PORT)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the test Redis, emptied before each test."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[SandboxControl]:
    env = {**os.environ, "SANDBOX_APP_TOKEN": APP_TOKEN}
    process = Sandbox("--app-key", APP_KEY, "--strict-schema", port=SANDBOX_PORT, env=env, cwd=ROOT)
    process.start()
    try:
        yield SandboxControl(process.url)
    finally:
        process.stop()


@pytest.fixture
def sandbox(sandbox_process: SandboxControl) -> SandboxControl:
    """The sandbox with an empty request log, no faults and no orders from earlier tests."""
    sandbox_process.reset()
    return sandbox_process


@pytest.fixture
def worker(redis_client: redis.Redis, sandbox: SandboxControl) -> Iterator[Worker]:
    """One real Celery worker process (threads pool) delivering to the sandbox."""
    process = Worker(dict(os.environ), "w1").start()
    yield process
    process.stop()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The environment to change; the settings are read again from it, and after the test."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def intake_process(redis_server: RedisServer) -> Iterator[Intake]:
    """``vtex-relay serve`` on a free port, on the test Redis; its own host name relay.test."""
    process = Intake(env={**os.environ, "INTAKE_HOST": "relay.test"}, cwd=ROOT)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def intake(intake_process: Intake, redis_client: redis.Redis) -> str:
    """The intake's URL, with the test Redis emptied."""
    return intake_process.url
