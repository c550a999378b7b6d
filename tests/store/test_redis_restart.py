"""Redis goes away and comes back: producers fail loudly meanwhile, workers carry on after.

The test Redis keeps nothing on disk by itself; ``SHUTDOWN SAVE`` writes its data first, as
an AOF-backed production Redis would have, and the restarted server loads it.
"""

import contextlib
import time

import pytest
import redis

from tests.processes import RedisServer, Worker, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice
from vtex_relay.errors import QueueUnavailable
from vtex_relay.sandbox import SandboxControl
from vtex_relay.store.keys import OrderRef


def delivered(sandbox: SandboxControl, prefix: str) -> set[str]:
    return {
        r.order_id or ""
        for r in sandbox.requests(method="POST")
        if r.applied_at is not None and (r.order_id or "").startswith(prefix)
    }


def test_a_redis_restart_loses_nothing_and_the_worker_carries_on(
    redis_server: RedisServer, redis_client: redis.Redis, sandbox: SandboxControl, worker: Worker
) -> None:
    sandbox.set_faults(latency_ms=200)  # keep some jobs waiting in Redis at the restart
    before = [f"o-before-{n}" for n in range(30)]
    for order in before:
        enqueue_invoice(order, invoice(f"NF-{order}"))

    with contextlib.suppress(redis.ConnectionError):  # the server hangs up as it goes
        redis_client.shutdown(save=True)
    assert redis_server.process is not None
    redis_server.process.wait(timeout=10)
    down_at = time.monotonic()
    with pytest.raises(QueueUnavailable, match="cannot reach Redis"):
        enqueue_invoice("o-during", invoice("NF-during"))
    assert time.monotonic() - down_at < 10  # loudly, and soon

    redis_server.start()  # same port, loads what was saved
    sandbox.set_faults(latency_ms=0)
    after = [f"o-after-{n}" for n in range(10)]
    for order in after:
        enqueue_invoice(order, invoice(f"NF-{order}"))

    def missing() -> str:
        lost = sorted({*before, *after} - delivered(sandbox, "o-"))
        states = {o: redis_client.hgetall(OrderRef("teststore", o).key("order")) for o in lost[:3]}
        return f"every job to be delivered; missing {lost}, orders {states}\n{worker.log()[-3000:]}"

    wait_for(lambda: delivered(sandbox, "o-") >= {*before, *after}, timeout=60, what=missing)
    assert worker.process is not None
    assert worker.process.poll() is None  # the same worker process carried on
    posts = [r for r in sandbox.requests(method="POST") if r.applied_at is not None]
    assert len(posts) == len({r.order_id for r in posts})  # and still one invoice per order
