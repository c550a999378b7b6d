"""The delivery guarantees with a real worker and a misbehaving sandbox.

Retries keep an order's jobs in order; an unknown outcome is reconciled with GET order
instead of a second POST; a poison order goes to the dead-letter queue, holds its later
jobs, and resumes in order after a replay or a discard.
"""

import json
import os
import signal
import time
from functools import partial
from typing import Any

import httpx
import redis
from click.testing import CliRunner

from tests.processes import Worker, text, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.cli.main import cli
from vtex_relay.sandbox import RecordedRequest, SandboxControl
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.messages import QUEUE

OMS = "/api/oms/pvt/orders"


def tracking(description: str, delivered: bool = False) -> dict[str, Any]:
    event = {"city": "Rio", "state": "RJ", "description": description, "date": "2024-06-23"}
    return {"isDelivered": delivered, "deliveredDate": None, "events": [event]}


def enqueue_order(order: str) -> None:
    enqueue_invoice(order, invoice(f"NF-{order}", 10000))
    enqueue_tracking_number(order, f"NF-{order}", {"trackingNumber": f"T-{order}"})
    enqueue_tracking(order, f"NF-{order}", tracking("picked up"))
    enqueue_tracking(order, f"NF-{order}", tracking("delivered", delivered=True))


def applied(sandbox: SandboxControl, order: str) -> list[RecordedRequest]:
    return [r for r in sandbox.requests(order_id=order) if r.applied_at is not None]


def completed(sandbox: SandboxControl, order: str) -> list[RecordedRequest] | None:
    got = applied(sandbox, order)
    return got if len(got) >= 4 else None


def invoice_posts(sandbox: SandboxControl, order: str) -> dict[str, int] | None:
    """How many times each invoice of the order was applied; None before the order exists."""
    try:
        posts: dict[str, int] = sandbox.order(order, "teststore")["invoicePosts"]
    except httpx.HTTPStatusError:
        return None
    return posts or None


def order_state(client: redis.Redis, order: str) -> str | None:
    state = client.hget(OrderRef("teststore", order).key("order"), "state")
    return None if state is None else text(state)


def assert_in_order(requests: list[RecordedRequest], order: str) -> None:
    calls = [(r.method, r.path, r.body.get("events", [{}])[0].get("description")) for r in requests]
    assert calls == [
        ("POST", f"{OMS}/{order}/invoice", None),
        ("PATCH", f"{OMS}/{order}/invoice/NF-{order}", None),
        ("PUT", f"{OMS}/{order}/invoice/NF-{order}/tracking", "picked up"),
        ("PUT", f"{OMS}/{order}/invoice/NF-{order}/tracking", "delivered"),
    ]


def test_retries_keep_each_order_in_order(sandbox: SandboxControl, worker: Worker) -> None:
    sandbox.set_faults(rate_5xx=0.25, rate_429=0.1, retry_after=0)
    orders = [f"o-retry-{n}" for n in range(10)]
    for order in orders:
        enqueue_order(order)
    for order in orders:
        requests = sandbox.wait_for(partial(completed, order=order), timeout=60)
        assert_in_order(requests, order)
    refused = [r for o in orders for r in sandbox.requests(order_id=o) if r.status in (429, 503)]
    assert refused, "the sandbox injected no fault: the test proved nothing"


def test_an_unknown_outcome_is_reconciled_not_posted_again(
    sandbox: SandboxControl, worker: Worker
) -> None:
    sandbox.set_faults(rate_apply_drop=1.0)  # VTEX applies the POST, then drops the line
    enqueue_invoice("o-drop", invoice("NF-drop", 10000))
    wait_for(lambda: applied(sandbox, "o-drop"), timeout=15, what="the POST to be applied")
    sandbox.set_faults(rate_apply_drop=0.0)  # the faults also hit GET: let reconciliation read
    worker.wait_for_log("already at VTEX (an earlier try landed)")
    assert sandbox.order("o-drop", "teststore")["invoicePosts"] == {"NF-drop": 1}
    assert [r.method for r in sandbox.requests(order_id="o-drop", method="POST")] == ["POST"]
    assert sandbox.requests(order_id="o-drop", method="GET")


def test_a_poison_order_is_held_then_replayed_in_order(
    sandbox: SandboxControl, worker: Worker, redis_client: redis.Redis
) -> None:
    sandbox.set_faults(fail_orders={"o-poison": 400})
    enqueue_order("o-poison")
    enqueue_order("o-healthy")
    sandbox.wait_for(lambda s: completed(s, "o-healthy"), timeout=30)  # not held up

    dead = wait_for(lambda: _dlq(), timeout=15, what="the invoice job in the dead-letter queue")
    [entry] = dead
    assert (entry["orderId"], entry["kind"]) == ("o-poison", "invoice")
    assert entry["lastError"]["status"] == 400
    assert entry["lastError"]["message"]  # VTEX's message is kept
    assert [r.method for r in sandbox.requests(order_id="o-poison")] == ["POST"]  # later: held

    sandbox.set_faults(fail_orders={})
    assert CliRunner().invoke(cli, ["dlq", "replay", entry["jobId"]]).exit_code == 0
    assert_in_order(sandbox.wait_for(lambda s: completed(s, "o-poison"), timeout=30), "o-poison")
    assert _dlq() == []


def test_discard_releases_the_next_job(sandbox: SandboxControl, worker: Worker) -> None:
    # A PATCH for an invoice VTEX does not have: 404, permanent.
    patch = enqueue_tracking_number("o-discard", "NF-x", {"trackingNumber": "T-1"})
    enqueue_invoice("o-discard", invoice("NF-discard", 10000))
    wait_for(lambda: [e for e in _dlq() if e["jobId"] == patch], timeout=15, what="a dead PATCH")
    assert CliRunner().invoke(cli, ["dlq", "discard", patch]).exit_code == 0
    requests = sandbox.wait_for(lambda s: applied(s, "o-discard") or None, timeout=15)
    assert [r.method for r in requests] == ["POST"]


def test_a_killed_worker_s_job_runs_again_within_the_lease(
    sandbox: SandboxControl, worker: Worker, redis_client: redis.Redis
) -> None:
    sandbox.set_faults(latency_ms=1500)  # keep the call in flight while the worker is killed
    enqueue_invoice("o-kill", invoice("NF-kill", 10000))
    wait_for(lambda: sandbox.requests(order_id="o-kill"), timeout=15, what="the POST to start")
    worker.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    sandbox.set_faults(latency_ms=0)
    replacement = Worker(worker.env, "w2").start()
    try:
        wait_for(
            lambda: order_state(redis_client, "o-kill") == "idle",
            timeout=40,
            what="the killed worker's job to be done",
        )
    finally:
        replacement.stop()
    recovered_after = time.monotonic() - killed_at
    assert recovered_after < 11 + 0.2 + 5  # LEASE_SECONDS + SWEEP_INTERVAL + a worker's start
    assert recovered_after > 11 - 2  # it waited for the lease, not less (so it is what we measured)
    assert invoice_posts(sandbox, "o-kill") == {"NF-kill": 1}
    # The recovered try found the killed one's POST at VTEX (GET order) and did not resend it.
    assert [r.method for r in sandbox.requests(order_id="o-kill")] == ["POST", "GET"]


def _dlq() -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["dlq", "list", "--json"])
    assert result.exit_code == 0, result.output
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def test_a_message_lost_by_a_killed_worker_is_replaced(
    sandbox: SandboxControl, redis_client: redis.Redis
) -> None:
    enqueue_invoice("o-lost", invoice("NF-lost", 10000))
    # kombu takes a message off the list before recording it as unacknowledged: a worker
    # killed in between loses it. Do just that, with no worker running.
    assert redis_client.rpop(QUEUE) is not None
    lost_at = time.monotonic()
    replacement = Worker(dict(os.environ), "w-lost").start()
    try:
        wait_for(
            lambda: order_state(redis_client, "o-lost") == "idle",
            timeout=40,
            what="the job whose message was lost to be done",
        )
    finally:
        replacement.stop()
    assert time.monotonic() - lost_at >= 11 - 1  # replaced after LEASE_SECONDS, not before
    assert invoice_posts(sandbox, "o-lost") == {"NF-lost": 1}
