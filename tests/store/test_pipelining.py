"""Overlapped pipelines (vtex_relay.store.pipelining) and the batched enqueue built on them."""

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.processes import read_message
from vtex_relay.jobs import Job
from vtex_relay.store.enqueuing import Enqueued
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.ordering import Ordering
from vtex_relay.store.pipelining import Command, overlapped

QUEUE = "test-pipelining"


def _pushes(*batches: range) -> list[tuple[str, list[Command]]]:
    """Each batch tagged with its range, e.g. "0-2"."""
    return [(f"{b.start}-{b.stop - 1}", [("RPUSH", "log", str(n)) for n in b]) for b in batches]


def test_each_batch_s_replies_come_back_in_order(redis_client: "redis.Redis") -> None:
    replies = list(overlapped(redis_client, _pushes(range(3), range(3, 3), range(3, 5))))

    # RPUSH answers the list's length; the empty batch is skipped; each tag comes back with its
    # own batch's replies.
    assert replies == [("0-2", [1, 2, 3]), ("3-4", [4, 5])]
    assert redis_client.lrange("log", 0, -1) == [b"0", b"1", b"2", b"3", b"4"]


def test_a_failing_source_still_hands_back_the_batch_already_sent(
    redis_client: "redis.Redis",
) -> None:
    def batches() -> Iterator[tuple[str, list[Command]]]:
        yield from _pushes(range(2))
        raise ValueError("the producer's job source failed")

    received: list[tuple[str, list[Any]]] = []
    with pytest.raises(ValueError, match="job source failed"):
        received.extend(overlapped(redis_client, batches()))

    assert received == [("0-1", [1, 2])]
    assert redis_client.llen("log") == 2


def test_an_error_reply_is_raised_and_leaves_no_reply_behind(
    redis_client: "redis.Redis",
) -> None:
    redis_client.set("not-a-list", "x")
    bad = [("RPUSH", "log", "a"), ("RPUSH", "not-a-list", "b"), ("RPUSH", "log", "c")]

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        list(overlapped(redis_client, [("bad", bad), *_pushes(range(2))]))

    # The pool's connections answer their own commands, not a leftover reply.
    assert redis_client.ping() is True
    length = redis_client.llen("log")
    assert list(overlapped(redis_client, [("n", [("LLEN", "log")])])) == [("n", [length])]


def test_a_consumer_that_stops_early_leaves_no_reply_behind(
    redis_client: "redis.Redis",
) -> None:
    replies = overlapped(redis_client, _pushes(range(2), range(2, 4), range(4, 6)))
    assert next(replies) == ("0-1", [1, 2])
    replies.close()

    assert redis_client.get("absent") is None
    assert redis_client.llen("log") == 4  # batch 2 was sent before batch 1's replies came back


def _job(order_id: str, kind: str, n: int) -> Job:
    if kind == "invoice":
        job = Job(
            kind="invoice",
            account="acme",
            order_id=order_id,
            invoice_number=f"NF{n}",
            # With its tracking number: the order's tracking updates may follow at once.
            body={"invoiceNumber": f"NF{n}", "trackingNumber": f"TR{n}"},
        )
    else:
        job = Job(
            kind="tracking", account="acme", order_id=order_id, invoice_number="NF0", body={"n": n}
        )
    return job


def test_a_batched_enqueue_keeps_each_order_s_jobs_in_order_across_pipelines(
    redis_client: "redis.Redis",
) -> None:
    # Two orders interleaved over pipelines of 3 jobs; order B gets a second, different invoice.
    items = [
        _job("A-01", "invoice", 0),
        _job("B-01", "invoice", 0),
        _job("A-01", "tracking", 1),
        _job("B-01", "tracking", 2),
        _job("A-01", "tracking", 3),
        _job("B-01", "invoice", 9),
        _job("A-01", "tracking", 4),
    ]

    results = [result for _job, result in Ordering(redis_client, QUEUE).enqueue(items, batch=3)]

    b_invoice = items[1].job_id
    assert [r.verdict for r in results] == ["enqueued"] * 5 + ["conflict", "enqueued"]
    assert results[5] == Enqueued("conflict", b_invoice, "NF0", "ready")
    for order_id, wanted in (("A-01", [0, 2, 4, 6]), ("B-01", [1, 3])):
        seqs = redis_client.hgetall(OrderRef("acme", order_id).key("seqs"))
        in_order = [seqs[str(seq).encode()] for seq in range(1, len(seqs) + 1)]
        assert in_order == [items[i].job_id.encode() for i in wanted]
    # Only each order's first job is ready, so only those two have a message.
    heads = [read_message(raw)[1]["job_id"] for raw in redis_client.lrange(QUEUE, 0, -1)]
    assert sorted(heads) == sorted([items[0].job_id, b_invoice])


def test_a_single_job_is_one_script_call(redis_client: "redis.Redis") -> None:
    ordering = Ordering(redis_client, QUEUE)
    list(ordering.enqueue([_job("A-01", "invoice", 0)]))  # the library loaded, if it was not
    redis_client.config_resetstat()

    list(ordering.enqueue([_job("B-01", "invoice", 0)]))

    calls = {name: stats["calls"] for name, stats in redis_client.info("commandstats").items()}
    # One FCALL round trip: nothing checks or loads the library first.
    assert calls.get("cmdstat_fcall") == 1
    assert "cmdstat_function|load" not in calls


def test_batches_load_the_library_once_and_again_when_redis_lost_it(
    redis_client: "redis.Redis",
) -> None:
    ordering = Ordering(redis_client, QUEUE)
    redis_client.function_flush()
    redis_client.config_resetstat()
    first = [_job(f"A-{n:02d}", "invoice", 0) for n in range(3)]
    second = [_job(f"B-{n:02d}", "invoice", 0) for n in range(3)]
    assert {r.verdict for _, r in ordering.enqueue(first, batch=2)} == {"enqueued"}
    assert {r.verdict for _, r in ordering.enqueue(second, batch=2)} == {"enqueued"}
    checked = ordering.check([Ordering.named(j, "") for j in second])  # enqueued already
    assert [r.job_id for r in checked] == [j.job_id for j in second]
    calls = {name: stats["calls"] for name, stats in redis_client.info("commandstats").items()}
    assert calls.get("cmdstat_function|load") == 1  # not once a batch (each an error reply)

    redis_client.function_flush()  # Redis lost it: each pipelined call finds it missing
    third = [_job(f"C-{n:02d}", "invoice", 0) for n in range(3)]
    assert {r.verdict for _, r in ordering.enqueue(third, batch=2)} == {"enqueued"}
    heads = [read_message(raw)[1]["job_id"] for raw in redis_client.lrange(QUEUE, 0, -1)]
    assert sorted(heads) == sorted(j.job_id for j in [*first, *second, *third])
