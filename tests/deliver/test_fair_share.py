"""Fair share between accounts: each account's dispatch window, its line, rate-aware dispatch,
and the counts `vtex-relay accounts` shows.

The scripts are driven in-process first (what Redis holds after each step), then real workers
deliver a noisy account's backlog and a quiet account's jobs to the sandbox.
"""

import json
import os
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from tests.processes import Worker, read_message, text, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice, enqueue_tracking_number
from vtex_relay.cli.main import cli
from vtex_relay.jobs import Job
from vtex_relay.sandbox import SandboxControl
from vtex_relay.store import keys
from vtex_relay.store.keys import LINES, OrderRef
from vtex_relay.store.ordering import Ordering

QUEUE = "test-fair-share"


def jobs(account: str, count: int) -> list[Job]:
    return [
        Job(
            kind="invoice",
            account=account,
            order_id=f"{account}-{n}",
            invoice_number=f"NF-{n}",
            body=invoice(f"NF-{n}"),
        )
        for n in range(count)
    ]


def queued(client: redis.Redis) -> list[str]:
    """The account of each message in the queue, next to be taken first."""
    return [read_message(raw)[1]["account"] for raw in reversed(client.lrange(QUEUE, 0, -1))]


def counts(client: redis.Redis, account: str) -> dict[str, int]:
    """The account's jobs by state: its counts, its line's length, its window's size."""
    raw = client.hgetall(keys.account(account, "jobs"))
    found = {text(k): int(v) for k, v in raw.items()}
    found["waiting"] = client.llen(keys.account(account, "line"))
    found["ready"] = client.scard(keys.account(account, "out"))
    return {state: n for state, n in found.items() if n}


def claim(ordering: Ordering, job: Job, rate: float = 0.0, burst: float = 0.0) -> str:
    return ordering.claim(OrderRef.of(job), job.job_id, "w", 60, rate, burst).verdict


def test_an_account_has_at_most_its_window_of_messages_and_the_others_take_turns(
    redis_client: redis.Redis,
) -> None:
    ordering = Ordering(redis_client, QUEUE, window=3)
    noisy, quiet = jobs("noisy", 100), jobs("quiet", 2)
    list(ordering.enqueue(noisy))
    list(ordering.enqueue(quiet))

    # 3 of the backlog's 100 have a message; the quiet account's jobs are right behind them.
    assert queued(redis_client) == ["noisy"] * 3 + ["quiet"] * 2
    assert redis_client.llen(keys.account("noisy", "line")) == 97
    assert counts(redis_client, "noisy") == {"ready": 3, "waiting": 97}

    # A claim takes a message out of the window, and the line's next job gets one, at the back.
    redis_client.rpop(QUEUE)
    assert claim(ordering, noisy[0]) == "run"
    assert queued(redis_client) == ["noisy"] * 2 + ["quiet"] * 2 + ["noisy"]
    assert counts(redis_client, "noisy") == {"ready": 3, "running": 1, "waiting": 96}
    assert counts(redis_client, "quiet") == {"ready": 2}


def test_an_account_over_its_rate_gets_messages_only_as_it_may_send(
    redis_client: redis.Redis,
) -> None:
    ordering = Ordering(redis_client, QUEUE, window=10)
    backlog = jobs("slow", 30)
    list(ordering.enqueue(backlog[:1]))
    redis_client.rpop(QUEUE)
    # The first claim tells the scripts the account's rate: 2 a second, no burst.
    assert claim(ordering, backlog[0], rate=2, burst=0) == "run"
    list(ordering.enqueue(backlog[1:]))

    # Its next slot is half a second away: no message yet (it would be parked by its claim),
    # and the account is due for a pump shortly before the slot.
    assert queued(redis_client) == []
    due = redis_client.zscore(LINES, "slow")
    seconds, micros = redis_client.time()
    assert due is not None
    assert 0.3 < due - (seconds + micros / 1e6) < 0.5

    # Once due, a sweep dispatches one message: the one the claim can run at once.
    wait_for(lambda: ordering.sweep(lost_after=60) and queued(redis_client), timeout=5)
    assert queued(redis_client) == ["slow"]


def test_a_try_that_reads_the_order_first_takes_a_slot_for_each_request(
    redis_client: redis.Redis,
) -> None:
    # VTEX counts the GET as well as the POST: at 10 a second with no burst, a try of two
    # requests pushes the next one's slot 0.2 s out, not 0.1 s.
    ordering = Ordering(redis_client, QUEUE, window=10)
    first, second, third = jobs("counted", 3)
    list(ordering.enqueue([first, second, third]))
    ref = OrderRef.of(first)
    assert ordering.claim(ref, first.job_id, "w", 60, 10, 0, checks_total=True).verdict == "run"
    held = ordering.claim(OrderRef.of(second), second.job_id, "w", 60, 10, 0, checks_total=True)
    assert held.verdict == "run"
    assert 0.15 < held.hold <= 0.2
    after_two = ordering.claim(OrderRef.of(third), third.job_id, "w", 60, 10, 0)
    assert 0.35 < after_two.hold <= 0.4


def test_accounts_command_shows_counts_rate_and_pause(
    redis_client: redis.Redis, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("VTEX_ACCOUNTS", json.dumps({"slow": {"rate": 2, "burst": 1}}))
    for n in range(5):
        enqueue_invoice(f"o-{n}", invoice(f"NF-{n}"), account="slow")
    enqueue_tracking_number("o-0", "NF-0", {"trackingNumber": "TR-0"}, account="slow")
    redis_client.set(keys.account("slow", "pause"), redis_client.time()[0] + 30, ex=30)

    result = CliRunner().invoke(cli, ["accounts", "--json"])

    assert result.exit_code == 0, result.output
    shown = {entry["account"]: entry for entry in json.loads(result.output)}
    slow = shown["slow"]
    assert (slow["waiting"], slow["ready"], slow["running"], slow["dead"]) == (1, 5, 0, 0)
    assert (slow["rate"], slow["burst"], slow["paused"]) == (2, 1, True)
    assert slow["pausedUntil"].endswith("Z")
    assert "teststore" in shown  # the default account, configured, with nothing to do

    text_view = CliRunner().invoke(cli, ["accounts"])
    assert text_view.exit_code == 0
    assert "2/s, burst 1" in text_view.output


@pytest.fixture
def two_workers(sandbox: SandboxControl, redis_client: redis.Redis) -> Iterator[None]:
    env = {**os.environ, "VTEX_ACCOUNTS": json.dumps({"noisy": {"rate": 20, "burst": 2}})}
    started = [Worker(env, f"fair{n}", concurrency=8).start() for n in range(2)]
    yield
    for worker in started:
        worker.stop()


def test_a_quiet_account_is_served_while_a_noisy_one_has_a_large_backlog(
    sandbox: SandboxControl, redis_client: redis.Redis, two_workers: None
) -> None:
    sandbox.set_faults(latency_ms=50)
    for n in range(1000):
        enqueue_invoice(f"o-noisy-{n}", invoice(f"NF-{n}"), account="noisy")
    for n in range(10):
        enqueue_invoice(f"o-quiet-{n}", invoice(f"NF-{n}"), account="quiet")

    wait_for(
        lambda: len(sandbox.requests(account="quiet")) >= 10,
        timeout=30,
        what="the quiet account's ten invoices",
    )

    # First come, first served, the quiet account would wait for the whole backlog: 50 s at
    # the noisy account's 20 calls a second. It waited for a window's worth at most.
    noisy_sent = len(sandbox.requests(account="noisy"))
    assert noisy_sent < 200, f"{noisy_sent} of the noisy account's calls went first"
    # And the noisy account's jobs were not fetched and parked again and again: each got a
    # message once, except at most a window's worth sent before the workers told its rate.
    refs = [OrderRef("noisy", f"o-noisy-{n}") for n in range(1000)]
    ids = [text(redis_client.hget(ref.key("seqs"), 1)) for ref in refs]
    dispatched = [
        int(redis_client.hget(ref.job_key(job_id), "dispatches") or 0)
        for ref, job_id in zip(refs, ids, strict=True)
    ]
    print(f"\nnoisy account: {noisy_sent} calls first; {sum(d > 1 for d in dispatched)} re-sent")
    assert sum(1 for d in dispatched if d > 1) <= 32
