"""The per-account rate limit, shared by every worker process, and the account-wide 429 pause.

Measured where VTEX would see it: the sandbox counts the requests it receives per second.
"""

import json
import os
import time
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner

from tests.processes import Worker, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice
from vtex_relay.cli.main import cli
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


@pytest.fixture
def one_worker(sandbox: SandboxControl, redis_client: object) -> Iterator[Callable[..., Worker]]:
    """Starts one worker process, with the settings given, when called."""
    started: list[Worker] = []

    def start(**settings: str) -> Worker:
        started.append(Worker({**os.environ, **settings}, "rlp").start())
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


def throttled_for_ever(sandbox: SandboxControl) -> float:
    """A 429 asking for 999,999,999 s (about 31 years) on an invoice of teststore; when."""
    sandbox.set_faults(fail_orders={"o-throttled": 429}, retry_after=999_999_999)
    enqueue_invoice("o-throttled", invoice("NF-t"))
    [throttled] = wait_for(
        lambda: sandbox.requests(order_id="o-throttled"), timeout=15, what="the 429"
    )
    assert throttled.status == 429
    sandbox.set_faults(fail_orders={})
    return throttled.received_at


def paused_until(account: str) -> str | None:
    result = CliRunner().invoke(cli, ["accounts", "--json"])
    assert result.exit_code == 0, result.output
    [row] = [row for row in json.loads(result.stdout) if row["account"] == account]
    return row["pausedUntil"]  # type: ignore[no-any-return]


def test_no_retry_after_pauses_longer_than_vtex_429_pause_max(
    sandbox: SandboxControl, one_worker: Callable[..., Worker]
) -> None:
    one_worker(VTEX_429_PAUSE_MAX="2")
    at = throttled_for_ever(sandbox)
    enqueue_invoice("o-same-account", invoice("NF-a"))
    wait_for(
        lambda: len(sandbox.requests(account="teststore", method="POST")) >= 3,
        timeout=15,
        what="the account's jobs delivered after at most 2 s",
    )
    later = [r for r in sandbox.requests(account="teststore") if r.order_id != "o-throttled"]
    assert at + 2 - 0.05 <= later[0].received_at < at + 10  # paused 2 s, not until 2058


def test_accounts_resume_ends_a_pause_at_once(
    sandbox: SandboxControl, one_worker: Callable[..., Worker]
) -> None:
    one_worker()  # VTEX_429_PAUSE_MAX: its default, 900 s
    at = throttled_for_ever(sandbox)
    enqueue_invoice("o-same-account", invoice("NF-a"))
    until = wait_for(lambda: paused_until("teststore"), what="the pause recorded")
    assert until.startswith(time.strftime("%Y-%m-%d", time.gmtime(at + 900)))
    result = CliRunner().invoke(cli, ["accounts", "resume", "TestStore"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("teststore: pause until ")
    assert "parked job(s) due now" in result.stdout
    assert paused_until("teststore") is None
    # The job that got the 429 and the one behind the pause go now, once each.
    wait_for(
        lambda: len([r for r in sandbox.requests(account="teststore") if r.status == 200]) >= 2,
        timeout=15,
        what="both invoices delivered after the resume",
    )
    posts = sandbox.requests(account="teststore", method="POST")
    assert sorted(r.order_id or "" for r in posts if r.status == 200) == [
        "o-same-account",
        "o-throttled",
    ]
    again = CliRunner().invoke(cli, ["accounts", "resume", "teststore"])
    assert again.stdout.startswith("teststore: was not paused; 0 parked job(s)")
    unknown = CliRunner().invoke(cli, ["accounts", "resume", "nostore"])
    assert unknown.exit_code == 0  # an open relay serves any account: nothing to resume
