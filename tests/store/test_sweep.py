"""The sweep's lost-message pass (sweep.lua) with a backlog waiting in the queue, and the PIN it
keeps in the sorted sets every job passes through."""

import redis

from tests.processes import read_message
from vtex_relay.jobs import Job
from vtex_relay.store.keys import LEASES, PIN, READY, OrderRef
from vtex_relay.store.ordering import Ordering

QUEUE = "test-sweep"


def _enqueue(ordering: Ordering, count: int, prefix: str) -> list[Job]:
    jobs = [
        Job(
            kind="tracking",
            account="acme",
            order_id=f"{prefix}-{n}",
            invoice_number="NF1",
            body={"n": n},
        )
        for n in range(count)
    ]
    list(ordering.enqueue(jobs))
    return jobs


def _pop_job_id(client: "redis.Redis") -> str:
    raw = client.rpop(QUEUE)
    assert isinstance(raw, bytes)
    return str(read_message(raw)[1]["job_id"])


def _hgets(client: "redis.Redis") -> int:
    stats = client.info("commandstats").get("cmdstat_hget", {"calls": 0})
    return int(stats["calls"])


def test_a_waiting_backlog_is_not_read_again_by_every_sweep(redis_client: "redis.Redis") -> None:
    ordering = Ordering(redis_client, QUEUE, window=1000)
    _enqueue(ordering, 500, "waiting")  # all ready, all still in the queue
    redis_client.config_resetstat()

    assert ordering.sweep(lost_after=0)[:4] == (0, 0, 0, 0)

    # The oldest waiting job shows that every later one is still queued: one job read, not 500.
    assert _hgets(redis_client) <= 2
    assert redis_client.llen(QUEUE) == 500


def test_a_lost_message_ahead_of_a_waiting_backlog_is_replaced(
    redis_client: "redis.Redis",
) -> None:
    ordering = Ordering(redis_client, QUEUE, window=1000)
    lost, taken, *waiting = _enqueue(ordering, 50, "o")
    # A worker takes the oldest message and dies before its claim; another takes the next and
    # claims it, which proves the first one left the queue.
    assert _pop_job_id(redis_client) == lost.job_id
    assert _pop_job_id(redis_client) == taken.job_id
    assert ordering.claim(OrderRef.of(taken), taken.job_id, "w-2", 60).verdict == "run"

    assert ordering.sweep(lost_after=0)[:4] == (0, 0, 0, 1)

    # The 48 waiting messages are left as they were; the replacement goes behind them.
    rest = [_pop_job_id(redis_client) for _ in range(redis_client.llen(QUEUE))]
    assert rest == [job.job_id for job in waiting] + [lost.job_id]


def test_the_sets_every_job_passes_through_stay_skiplists_and_the_pin_is_never_due(
    redis_client: "redis.Redis",
) -> None:
    ordering = Ordering(redis_client, QUEUE, window=1000)
    first, second = _enqueue(ordering, 2, "pinned")
    assert redis_client.object("encoding", READY) == b"skiplist"  # pinned by the first enqueue
    redis_client.delete(READY)  # a Redis stamped by a version without the pin
    _enqueue(ordering, 1, "late")
    assert redis_client.object("encoding", READY) == b"listpack"

    ordering.sweep(lost_after=0)
    for key in (READY, LEASES):
        assert redis_client.object("encoding", key) == b"skiplist"
        assert redis_client.zscore(key, PIN) == float("inf")
    for job in (first, second):
        assert _pop_job_id(redis_client) == job.job_id
        assert ordering.claim(OrderRef.of(job), job.job_id, "w", 60).verdict == "run"
        ordering.finish(OrderRef.of(job), job.job_id, "w", "done", "{}", retention_seconds=60)
    # Every job's entry is gone; the pin stays, so the keys (and their encoding) stay too, and
    # a sweep finds nothing due in it.
    assert redis_client.zrange(LEASES, 0, -1) == [PIN.encode()]
    assert ordering.sweep(lost_after=0)[:4] == (0, 0, 0, 0)
    assert redis_client.object("encoding", LEASES) == b"skiplist"
