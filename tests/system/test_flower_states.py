"""The Celery task state of each try, as Flower receives it: task events from a real worker.

A receiver on the broker's event exchange (what Flower runs) feeds Celery's own
``celery.events.state.State`` (what Flower builds its views from). A try that delivers its
job is SUCCESS; one that ends it dead (VTEX refused it) is FAILURE with VTEX's message; one
that will be retried is RETRY, and the job is then delivered once. Celery itself re-runs and
re-publishes nothing: every message a worker received is a dispatch counted in Redis.
"""

import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from celery.events.state import State, Task

from tests.processes import Worker, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice, enqueue_tracking_number
from vtex_relay.sandbox import SandboxControl
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.messages import QUEUE
from worker.app import app


class Events:
    """Every event the worker sends, captured in a thread, and the task states Flower shows."""

    def __init__(self) -> None:
        self.all: list[dict[str, Any]] = []
        self.state = State()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._connection = app.connection()
        self._receiver = app.events.Receiver(self._connection, handlers={"*": self._on_event})
        self._thread = threading.Thread(target=self._capture, daemon=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.all.append(event)
            self.state.event(event)

    def _capture(self) -> None:
        try:
            self._receiver.capture(limit=None, timeout=None, wakeup=True)
        except BaseException as exc:  # reported by the waits, which would time out otherwise
            self.error = exc

    def start(self) -> "Events":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._receiver.should_stop = True  # checked at least once a second
        self._thread.join(timeout=10)
        self._connection.release()

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the event receiver failed: {self.error!r}")

    def of(self, job_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The task events of one job (a task's id is its job's id), oldest first."""
        self.check()
        with self._lock:
            return [e for e in self.all if e.get("uuid") == job_id and kind in (None, e["type"])]

    def task(self, job_id: str) -> Task | None:
        """The task as Flower shows it (None before its first event)."""
        self.check()
        with self._lock:
            return dict(self.state.itertasks()).get(job_id)

    def task_state(self, job_id: str) -> str | None:
        task = self.task(job_id)
        return None if task is None else task.state

    def worker_seen(self) -> bool:
        with self._lock:
            return any(e["type"].startswith("worker-") for e in self.all)


@pytest.fixture
def events(redis_client: redis.Redis, sandbox: SandboxControl) -> Iterator[Events]:
    """A worker sending task events from the first job, and what a Flower would receive."""
    captured = Events().start()
    process = Worker({**os.environ, "TASK_EVENTS": "true"}, "wev")
    try:
        process.start()
        # A worker event (online, heartbeat) proves the receiver is subscribed: no task event
        # of the test can be missed.
        wait_for(captured.worker_seen, timeout=20, what="an event from the worker")
        yield captured
    finally:
        process.stop()
        captured.stop()


def dispatches(client: redis.Redis, order_id: str, job_id: str) -> int:
    value = client.hget(OrderRef("teststore", order_id).job_key(job_id), "dispatches")
    return int(value or 0)


def wait_settled(events: Events, client: redis.Redis, order_id: str, job_id: str) -> None:
    """Wait until the worker has received every message dispatched for the job, none is left
    in the queue, and no more was received than dispatched."""

    def counts() -> tuple[int, int, int]:
        received = len(events.of(job_id, "task-received"))
        return received, dispatches(client, order_id, job_id), client.llen(QUEUE)

    def describe() -> str:
        return "the job's messages: (received, dispatched, queued) = {}, {}, {}".format(*counts())

    def done() -> bool:
        received, dispatched, queued = counts()
        return received == dispatched and queued == 0

    wait_for(done, what=describe)


ISO_TIME = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"


def retry_time(text: str) -> datetime:
    """The time named in a RETRY's text: a ``datetime.datetime(...)`` repr (Celery's repr of
    ``Retry(when=...)``) or an ISO 8601 time."""
    if found := re.search(r"datetime\.datetime\(([\d, ]+)", text):
        parts = [int(p) for p in found.group(1).split(",") if p.strip()] + [0] * 7
        year, month, day, hour, minute, second, micro = parts[:7]
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    if found := re.search(ISO_TIME, text):
        when = datetime.fromisoformat(found.group(0).replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    raise AssertionError(f"no time in the RETRY's text: {text!r}")


def shown(events: list[dict[str, Any]], job_id: str) -> Task:
    """The task as a Flower that had received only *events* shows it."""
    state = State()
    for event in events:
        state.event(dict(event))
    return dict(state.itertasks())[job_id]


def test_a_delivered_try_is_success(
    events: Events, sandbox: SandboxControl, redis_client: redis.Redis
) -> None:
    job = enqueue_invoice("o-ok", invoice("NF-ok"))
    wait_for(lambda: events.task_state(job) == "SUCCESS", what=f"SUCCESS of {job}")
    task = events.task(job)
    assert task is not None
    assert "delivered" in str(task.result)
    assert events.of(job, "task-failed") == events.of(job, "task-retried") == []
    [post] = sandbox.requests(order_id="o-ok", method="POST")
    assert post.applied_at is not None
    wait_settled(events, redis_client, "o-ok", job)
    assert dispatches(redis_client, "o-ok", job) == 1


def test_a_try_that_kills_the_job_is_failure_with_vtex_message(
    events: Events, sandbox: SandboxControl, redis_client: redis.Redis
) -> None:
    # PATCH of an invoice the order does not have: VTEX answers 404 Invoice Not Found.
    job = enqueue_tracking_number("o-dead", "NF-1", {"trackingNumber": "T-1"})
    wait_for(lambda: events.task_state(job) == "FAILURE", what=f"FAILURE of {job}")
    task = events.task(job)
    assert task is not None
    assert "JobDead" in str(task.exception)
    assert "dead: HTTP 404: Invoice Not Found" in str(task.exception)
    assert events.of(job, "task-succeeded") == events.of(job, "task-retried") == []
    assert redis_client.hget(OrderRef("teststore", "o-dead").job_key(job), "state") == b"dead"
    wait_settled(events, redis_client, "o-dead", job)
    assert dispatches(redis_client, "o-dead", job) == 1  # Celery did not run it again
    assert len(sandbox.requests(order_id="o-dead", method="PATCH")) == 1


def test_a_try_to_be_retried_is_retry_then_the_job_is_delivered_once(
    events: Events, sandbox: SandboxControl, redis_client: redis.Redis
) -> None:
    sandbox.set_faults(rate_5xx=1.0)
    job = enqueue_invoice("o-retry", invoice("NF-retry"))
    wait_for(lambda: events.of(job, "task-retried"), what=f"a task-retried event of {job}")
    sandbox.set_faults(rate_5xx=0.0)
    so_far = events.of(job)
    first_retry = next(i for i, e in enumerate(so_far) if e["type"] == "task-retried")
    retrying = shown(so_far[: first_retry + 1], job)
    assert retrying.state == "RETRY"
    text = f"{retrying.exception}\n{retrying.traceback}"
    assert "HTTP 503: Service Unavailable" in text
    due = retry_time(text)  # when the next try is due, as Flower shows it
    # Due within the backoff (RETRY_BACKOFF_MAX=0.5 s, full jitter) of the event; a second of
    # slack for the two clocks.
    assert -1 <= due.timestamp() - so_far[first_retry]["timestamp"] <= 0.5 + 1

    wait_for(lambda: events.task_state(job) == "SUCCESS", what=f"SUCCESS of {job}")
    wait_settled(events, redis_client, "o-retry", job)
    posts = sandbox.requests(order_id="o-retry", method="POST")
    assert [p.applied_at is not None for p in posts][-1:] == [True]
    assert sum(p.applied_at is not None for p in posts) == 1  # applied exactly once
    # One message per try, each a dispatch recorded in Redis: Celery published none of its own.
    tries = len(events.of(job, "task-retried")) + 1
    assert len(posts) == tries
    assert len(events.of(job, "task-received")) == dispatches(redis_client, "o-retry", job) == tries
