"""The per-account rate limit, shared by every worker process, and the account-wide 429 pause.

Measured where VTEX would see it: the sandbox counts the requests it receives per second.
"""

import os
import time
from collections.abc import Callable, Iterator

import pytest

from tests.processes import Worker, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice
from vtex_relay.sandbox import SandboxControl

# Calls are sent at their slots; on a busy 2-core machine a send can still slip by a few
# milliseconds into the next second, which matters less the lower the rate.
RATE, BURST = 20, 4
PAUSE = 3  # VTEX_429_PAUSE, low for the test (default: a minute)


@pytest.fixture
def workers(sandbox: SandboxControl, redis_client: object) -> Iterator[Callable[[], None]]:
    """Starts four worker processes when called (so a test can enqueue first)."""
    env = {
        **os.environ,
        "VTEX_RATE_LIMIT": str(RATE),
        "VTEX_RATE_BURST": str(BURST),
        "VTEX_429_PAUSE": str(PAUSE),
    }
    started: list[Worker] = []

    def start() -> None:
        started.extend(Worker(env, f"rl{n}", concurrency=8).start() for n in range(4))

    yield start
    for worker in started:
        worker.stop()


def test_four_workers_stay_under_the_account_rate(
    sandbox: SandboxControl, workers: Callable[[], None]
) -> None:
    jobs = 12 * RATE
    for n in range(jobs):
        enqueue_invoice(f"o-rate-{n}", invoice(f"NF-{n}"))
    workers()  # a backlog, as after an ERP's end-of-day batch: all four start on it at once
    wait_for(lambda: sandbox.stats()["total"] >= jobs, timeout=60, what="every job delivered")
    stats = sandbox.stats()
    busiest = max(second["count"] for second in stats["perSecond"])
    print(f"\n{jobs} jobs by 4 workers at {RATE}/s burst {BURST}: busiest second {busiest}")
    print([s["count"] for s in stats["perSecond"]])
    assert busiest <= RATE + BURST + 1  # +1: a second's edge can hold one more slot
    assert busiest >= RATE * 0.75  # the limit is what held them back, not something slower


def test_a_429_pauses_the_whole_account_and_only_it(
    sandbox: SandboxControl, workers: Callable[[], None]
) -> None:
    workers()
    sandbox.set_faults(fail_orders={"o-throttled": 429}, retry_after=2)
    enqueue_invoice("o-throttled", invoice("NF-t"))
    [throttled] = wait_for(
        lambda: sandbox.requests(order_id="o-throttled"), timeout=15, what="the 429"
    )
    assert throttled.status == 429
    for n in range(5):
        enqueue_invoice(f"o-same-account-{n}", invoice(f"NF-a{n}"))
        enqueue_invoice(f"o-other-account-{n}", invoice(f"NF-b{n}"), account="otherstore")
    wait_for(
        lambda: len(sandbox.requests(account="otherstore")) >= 5,
        timeout=1.5,
        what="the other account's jobs, not paused",
    )
    sandbox.set_faults(fail_orders={})
    wait_for(
        lambda: len(sandbox.requests(account="teststore")) >= 7,
        timeout=20,
        what="the paused account to resume",
    )
    paused = [r for r in sandbox.requests(account="teststore") if r.order_id != "o-throttled"]
    first = min(r.received_at for r in paused)
    assert first >= throttled.received_at + 2 - 0.05, "a job of the paused account ran early"
    assert time.time() - throttled.received_at < 15


def test_a_429_without_retry_after_pauses_the_account_for_vtex_429_pause(
    sandbox: SandboxControl, workers: Callable[[], None]
) -> None:
    workers()
    sandbox.set_faults(fail_orders={"o-throttled": 429}, retry_after=None)
    enqueue_invoice("o-throttled", invoice("NF-t"))
    [throttled] = wait_for(
        lambda: sandbox.requests(order_id="o-throttled"), timeout=15, what="the 429"
    )
    assert throttled.status == 429
    sandbox.set_faults(fail_orders={})
    enqueue_invoice("o-same-account", invoice("NF-a"))
    wait_for(
        lambda: len(sandbox.requests(account="teststore")) >= 3,
        timeout=20,
        what="both jobs of the paused account delivered",
    )
    later = [r for r in sandbox.requests(account="teststore") if r.seq != throttled.seq]
    first = min(r.received_at for r in later)
    assert first >= throttled.received_at + PAUSE - 0.05, "the account was not paused"
