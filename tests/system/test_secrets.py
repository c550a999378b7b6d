"""The app token never travels: not in Redis, not in a log line, not in Flower.

The worker really delivers (and fails) jobs with a recognisable token, then every place a
token could leak to is searched. Each search first checks that it saw the jobs at all, so
the test cannot pass by looking at nothing.
"""

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import APP_TOKEN
from tests.processes import ROOT, Worker, free_port, text, wait_for
from vtex_relay import enqueue_invoice, enqueue_tracking_number
from vtex_relay.sandbox import SandboxControl

INVOICE = {
    "type": "Output",
    "issuanceDate": "2024-01-31T18:25:43-05:00",
    "invoiceNumber": "NF-77",
    "invoiceValue": "2499",
    "items": [{"id": "123", "price": 2499, "quantity": 1}],
}


@pytest.fixture
def flower(worker: Worker) -> Iterator[httpx.Client]:
    with running_flower() as client:
        yield client


@contextmanager
def running_flower() -> Iterator[httpx.Client]:
    """Flower for the workers started with this environment, once it shows a job's arguments."""
    port = free_port()
    env = {**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.app",
        "flower",
        "--address=127.0.0.1",
        f"--port={port}",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:

        def up() -> bool:
            try:
                return client.get("/healthcheck").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=30, what="Flower to answer")

        warmups = itertools.count()

        # Flower answers before its event consumer is connected, and a job whose "received" event
        # it missed shows without arguments: enqueue warm-up jobs until one shows with its own.
        def shows_arguments() -> bool:
            order = f"o-warmup-{next(warmups)}"  # its own order: a failed job holds its order
            job = enqueue_tracking_number(order, "NF-0", {"trackingNumber": "T-0"})
            try:
                wait_for(lambda: order in client.get(f"/api/task/info/{job}").text, timeout=2)
            except AssertionError:
                return False
            return True

        wait_for(shows_arguments, timeout=30, what="Flower to receive task events")
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def redis_contents(client: redis.Redis) -> str:
    """Every key and value in the test Redis, whatever its type, as one text."""
    readers: dict[str, Callable[[bytes], Any]] = {
        "string": client.get,
        "list": lambda key: client.lrange(key, 0, -1),
        "hash": client.hgetall,
        "set": client.smembers,
        "zset": lambda key: client.zrange(key, 0, -1),
        "stream": client.xrange,
    }
    chunks = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        chunks.append(f"{key!r} {readers[text(kind)](key)!r}")
    return "\n".join(chunks)


def test_the_token_is_nowhere(
    redis_client: redis.Redis,
    sandbox: SandboxControl,
    worker: Worker,
    flower: httpx.Client,
) -> None:
    # A job left in the queue (enqueued while the worker is busy being checked) and delivered
    # ones, a success and a refusal, so that messages, logs and error texts all exist.
    delivered = enqueue_invoice("o-secret", INVOICE)
    refused = enqueue_tracking_number("o-none", "NF-1", {"trackingNumber": "T-1"})
    sandbox.wait_for(lambda s: len(s.requests(order_id="o-none")) >= 1, timeout=15)
    worker.wait_for_log(f"(job {refused})")
    worker.wait_for_log(f"(job {delivered})")

    def flower_tasks() -> dict[str, object] | None:
        tasks: dict[str, object] = flower.get("/api/tasks").json()
        return tasks if {delivered, refused} <= tasks.keys() else None

    wait_for(flower_tasks, timeout=15, what="Flower to show both jobs")
    tasks_json = flower.get("/api/tasks").text
    pages = [flower.get(f"/task/{job}").text for job in (delivered, refused)]
    # The tries' outcomes, once Flower has the task-succeeded and task-failed events (which
    # come after the worker's log line).
    wait_for(
        lambda: "delivered" in flower.get(f"/api/task/info/{delivered}").text,
        timeout=15,
        what="Flower to show the delivered job's outcome",
    )
    wait_for(
        lambda: "dead: HTTP 404" in flower.get(f"/api/task/info/{refused}").text,
        timeout=15,
        what="Flower to show the dead job's outcome",
    )
    assert all("o-secret" in page or "o-none" in page for page in pages)

    worker.stop()  # so that the next job's message stays in Redis to be searched
    waiting = enqueue_invoice("o-waiting", {**INVOICE, "invoiceNumber": "NF-78"})
    everything = redis_contents(redis_client)
    assert waiting in everything

    assert APP_TOKEN not in everything
    assert APP_TOKEN not in worker.log()
    assert APP_TOKEN not in tasks_json
    for page in pages:
        assert APP_TOKEN not in page
    assert APP_TOKEN not in str([r.body for r in sandbox.requests()])
