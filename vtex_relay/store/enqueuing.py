"""Enqueueing: each job appended to its order by ``lua/enqueue.lua``, one script call a job
(pipelined, overlapped, for many), or every job of a batch decided by the same script in its
check mode, which writes nothing. A mixin of ``Ordering``, which holds the scripts.
"""

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

import redis
from pydantic_core import to_json

from vtex_relay.jobs import Job
from vtex_relay.operations import operation
from vtex_relay.store import keys
from vtex_relay.store.fingerprints import body_digest, fingerprint
from vtex_relay.store.keys import LAYOUT_VERSION, OrderRef, text
from vtex_relay.store.pipelining import Command, overlapped
from vtex_relay.store.scripts import Function, missing


class Enqueued(NamedTuple):
    """What enqueueing one job did.

    ``enqueued``: a new job. ``duplicate``: the identical job is enqueued already, ``job_id``
    is its id. ``conflict``: a different invoice holds the order (``invoice_number``, ``state``).
    ``skipped``: the job before it in the same call, for the same order, is not in its order,
    so it was not enqueued either (an order never gets a later job without the earlier ones).
    ``failed``: Redis refused the script (``state`` holds its error, e.g. out of memory).
    ``unknown-invoice``: an update for an invoice number the order does not have, while the
    relay knows its invoices (``state``: them, space-separated). ``untracked``: a tracking
    update for an invoice with no tracking number yet (none in its body, no tracking-number
    job before it).
    """

    verdict: Literal[
        "enqueued", "duplicate", "conflict", "skipped", "failed", "unknown-invoice", "untracked"
    ]
    job_id: str
    invoice_number: str | None = None
    state: str | None = None


class Enqueuing:
    """``Ordering``'s enqueue and check (see its ``__init__`` for the attributes)."""

    client: "redis.Redis"
    queue: str
    window: int
    confirming: list[list[Any]]
    wait_replicas: int
    wait_timeout_ms: int
    _enqueue: Function

    def enqueue(self, jobs: Iterable[Job], batch: int = 1000) -> Iterator[tuple[Job, Enqueued]]:
        """Append each job to its order, in order: a single job in one script call, more in
        pipelines of *batch* jobs, each sent while Redis runs the one before.

        A job after the first of its order in this call is enqueued only if the one before it
        is in the order (else ``skipped``), so a call that fails part-way leaves every order a
        prefix of its jobs. A script Redis refuses (out of memory) is ``failed``; the rest are
        still sent, each decided on its own. A lost connection raises ``redis.RedisError``.
        """
        latest: dict[OrderRef, str] = {}  # each order's last fingerprint in this call
        iterator = iter(jobs)
        first = list(itertools.islice(iterator, 2))
        if len(first) == 1 and not self.confirming:
            [job] = first
            names, args = self._enqueue_call(job, latest)
            try:
                reply: Any = self._enqueue(keys=names, args=args)
            except redis.ResponseError as exc:
                reply = exc
            yield job, _enqueued(job.job_id, _only(reply))
            return
        if not first:
            return
        self._enqueue.ensure()  # the pipelined calls are plain FCALLs, which load nothing

        def batches() -> Iterator[tuple[tuple[list[Job], list[Command]], list[Command]]]:
            for chunk in _chunks(itertools.chain(first, iterator), batch):
                calls = (self._enqueue_call(job, latest) for job in chunk)
                sent: list[Command] = [*(self._enqueue.command(*c) for c in calls)]
                sent += self.confirming
                yield (chunk, sent), sent

        for (chunk, sent), replies in overlapped(self.client, batches(), raise_on_error=False):
            replies = self._again(sent, replies)
            unconfirmed = self._unconfirmed(replies[len(chunk) :])
            for job, reply in zip(chunk, replies, strict=False):
                result = _enqueued(job.job_id, _only(reply))
                if unconfirmed and result.verdict in ("enqueued", "duplicate"):
                    result = Enqueued("failed", job.job_id, state=f"UNCONFIRMED {unconfirmed}")
                yield job, result

    def _again(self, sent: Sequence[Command], replies: list[Any]) -> list[Any]:
        """*replies*, or, if Redis had lost the scripts' library since this process loaded it
        (``FUNCTION FLUSH``, a Redis that lost its data), those of *sent* sent again once it
        is loaded. Safe: an enqueue call that did not run did nothing, and one that did
        answers again as it did the first time (the job is enqueued already)."""
        if not any(missing(reply) for reply in replies):
            return replies
        self._enqueue.load()
        return _pipelined(self.client, sent)

    def _unconfirmed(self, replies: list[Any]) -> str | None:
        """Why the confirming replies (``INCR``, ``WAIT``, ``WAITAOF``) do not confirm the
        batch; None if they do (or none are asked)."""
        for command, reply in zip(self.confirming, replies, strict=True):
            if isinstance(reply, redis.ResponseError):
                return f"{command[0]} failed: {reply}"
            if command[0] == "WAIT" and int(reply) < self.wait_replicas:
                return (
                    f"by {int(reply)} of {self.wait_replicas} replica(s) within "
                    f"{self.wait_timeout_ms} ms (ENQUEUE_WAIT_REPLICAS)"
                )
            if command[0] == "WAITAOF" and int(reply[0]) < 1:
                return f"by the AOF on disk within {self.wait_timeout_ms} ms (ENQUEUE_WAIT_AOF)"
        return None

    def check(self, jobs: Sequence[dict[str, Any]]) -> list[Enqueued]:
        """What enqueueing *jobs* (each as ``named`` gives it) in order would do to each,
        decided by the enqueue script itself with nothing written: one call per order,
        pipelined. A batch's pre-check."""
        orders: dict[str, list[int]] = {}
        for index, job in enumerate(jobs):
            orders.setdefault(job["ref"], []).append(index)
        sent = [
            self._enqueue.command(
                self._order_keys(ref), self._args([jobs[i] for i in indexes], check=True)
            )
            for ref, indexes in orders.items()
        ]
        self._enqueue.ensure()
        replies = self._again(sent, _pipelined(self.client, sent))
        results: list[Enqueued] = [Enqueued("skipped", "")] * len(jobs)
        for indexes, reply in zip(orders.values(), replies, strict=True):
            for n, index in enumerate(indexes):
                answer = reply if isinstance(reply, redis.ResponseError) else reply[n]
                results[index] = _enqueued(jobs[index]["id"], answer)
        return results

    def _enqueue_call(self, job: Job, latest: dict[OrderRef, str]) -> tuple[list[str], list[str]]:
        ref = OrderRef.of(job)
        named = self.named(job, latest.get(ref, ""))
        latest[ref] = named["fingerprint"]
        return self._order_keys(ref.tag), [*self._args([named]), to_json(job.body).decode()]

    def _order_keys(self, tag: str) -> list[str]:
        order, seqs = keys.order(tag, "order"), keys.order(tag, "seqs")
        dedup, invoices = keys.order(tag, "dedup"), keys.order(tag, "invoices")
        return [order, seqs, self.queue, dedup, invoices, keys.order(tag, "tracked")]

    def _args(self, jobs: list[dict[str, Any]], *, check: bool = False) -> list[str]:
        named = {"check": check, "window": self.window, "layout": str(LAYOUT_VERSION)}
        return [to_json({**named, "jobs": jobs}).decode()]

    @staticmethod
    def named(job: Job, after: str) -> dict[str, Any]:
        """*job* as the enqueue script takes it (``lua/enqueue.lua``'s header)."""
        op = operation(job.kind)
        invoice = op.posts_invoice
        digest = body_digest(job.body) if invoice else ""
        return {
            "ref": OrderRef.of(job).tag,
            "id": job.job_id,
            "kind": job.kind,
            "digest": digest,
            "number": job.invoice_number or "",
            "enqueued_at": to_json(job.enqueued_at).decode()[1:-1],  # as in the task message
            "fingerprint": fingerprint(job, digest),
            "after": after,
            "posts_invoice": invoice,
            "needs_tracking_number": op.needs_tracking_number,
            "tracks": op.gives_tracking_number(job.body),
            "type": str(job.body.get("type", "")) if invoice else "",
            "value": str(job.body.get("invoiceValue", "")) if invoice else "",
            "policy": job.invoice_policy,
        }


def _chunks(items: Iterable[Job], size: int) -> Iterator[list[Job]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _only(reply: Any) -> Any:
    """The reply to a write call's one job (the script replies per job), or its error."""
    return reply if isinstance(reply, redis.ResponseError) else reply[0]


def _pipelined(client: "redis.Redis", commands: Sequence[Command]) -> list[Any]:
    """The replies to *commands*, sent in one pipeline; errors in their places."""
    with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        return pipe.execute(raise_on_error=False)


def _enqueued(job_id: str, reply: Any) -> Enqueued:
    if isinstance(reply, redis.ResponseError):
        # redis-py drops the error code from an OOM reply's text: put it back.
        oom = "OOM " if isinstance(reply, redis.exceptions.OutOfMemoryError) else ""
        return Enqueued("failed", job_id, state=f"{oom}{reply}")
    parts = [text(part) for part in reply]
    if parts[0] == "conflict":
        return Enqueued("conflict", parts[1], parts[2], parts[3])
    if parts[0] == "skipped":
        return Enqueued("skipped", job_id)
    if parts[0] == "unknown-invoice":
        return Enqueued("unknown-invoice", job_id, state=parts[1])
    if parts[0] == "untracked":
        return Enqueued("untracked", job_id)
    return Enqueued("duplicate" if parts[0] == "duplicate" else "enqueued", parts[1])
