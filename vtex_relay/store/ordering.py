"""Per-order ordering and the invoice ledgers, kept in Redis, changed only by Lua scripts.

Guarantees (see docs/delivery.md for the states and why each crash point is safe):

- Jobs of one (account, orderId) run one at a time, in enqueue order: only an order's head
  job ever has a Celery message; the next job gets its turn from the script that finishes
  the head. Different orders never wait on each other.
- Accounts share the workers fairly: an account's jobs whose turn has come wait in its line
  in Redis, and at most ``window`` of them have a message in the Celery queue at once (a
  rate-limited or paused account's, only when it may send); see ``common.lua``, ``pump``.
- Each invoice number is one invoice, and under the ``single`` policy an order has one Output
  invoice (unless an operator discarded it): a different one is refused at enqueue, the
  identical one, like any identical job, answers with the first job's id.
- Every state change is one script, so a crash of a producer, a worker or Redis between two
  calls leaves a state that the next call (or the sweep) carries on from.
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
from vtex_relay.store.keys import (
    ACKS,
    CLAIMED,
    DEAD,
    DELAYED,
    DISCARDED,
    LAYOUT_VERSION,
    LEASES,
    READY,
    OrderRef,
    text,
)
from vtex_relay.store.messages import QUEUE
from vtex_relay.store.pipelining import overlapped
from vtex_relay.store.scripts import script


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


class Claim(NamedTuple):
    """``run``: this worker holds the job (``uncertain``: an earlier try may have landed).

    ``hold``: seconds to wait before the call, for the job's rate-limit slot (at most one).
    ``wait``: the account's rate limit or a 429 pause said not yet; the job is ``throttled``:
    it waits in Redis ``wait`` seconds (no try counted). ``busy``/``stale``: a duplicate
    message, to drop.
    """

    verdict: Literal["run", "wait", "busy", "stale"]
    seq: int = 0
    tries: int = 0
    uncertain: bool = False
    wait: float = 0.0
    hold: float = 0.0


# What happens after a try: the job is done (the order moves on), retried later, or dead.
Decision = Literal["done", "retry", "dead"]


class Swept(NamedTuple):
    """What one sweep did: retries due, throttled jobs released (their rate-limit slot or the
    account's pause is near: not a retry, no try counted), jobs recovered from expired leases,
    lost messages replaced; and in how many seconds an account's line is next due (None:
    none is waiting on its rate or a pause)."""

    retried: int
    released: int
    recovered: int
    replaced: int
    next_due: float | None = None


# The most messages one account may have in the Celery queue (``DISPATCH_WINDOW``).
DEFAULT_WINDOW = 32


class Ordering:
    """The scripts, bound to one Redis client (thread-safe: redis-py pools connections)."""

    def __init__(
        self,
        client: "redis.Redis",
        queue: str = QUEUE,
        window: int = DEFAULT_WINDOW,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
        wait_aof: bool = False,
    ) -> None:
        self.client = client
        self.queue = queue
        self.window = window
        # Durable acknowledgement (ENQUEUE_WAIT_*): after the scripts, on the same connection,
        # one write (so that the replicas which have it have everything written before it,
        # an identical job's first enqueue included), then WAIT (and WAITAOF).
        self.confirming: list[list[Any]] = []
        if wait_replicas or wait_aof:
            self.confirming.append(["INCR", ACKS])
        if wait_replicas:
            self.confirming.append(["WAIT", wait_replicas, wait_timeout_ms])
        if wait_aof:
            self.confirming.append(["WAITAOF", 1, 0, wait_timeout_ms])
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._enqueue = script(client, "enqueue")
        self._claim = script(client, "claim")
        self._finish = script(client, "finish")
        self._sweep = script(client, "sweep")
        self._resolve = script(client, "resolve")

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
        # The pipelined calls are plain EVALSHAs: redis-py reloads a script only for one call.
        self.client.script_load(self._enqueue.script)
        batches = (
            (
                chunk,
                [
                    *(
                        ["EVALSHA", self._enqueue.sha, len(names), *names, *args]
                        for names, args in (self._enqueue_call(job, latest) for job in chunk)
                    ),
                    *self.confirming,
                ],
            )
            for chunk in _chunks(itertools.chain(first, iterator), batch)
        )
        for chunk, replies in overlapped(self.client, batches, raise_on_error=False):
            unconfirmed = self._unconfirmed(replies[len(chunk) :])
            for job, reply in zip(chunk, replies, strict=False):
                result = _enqueued(job.job_id, _only(reply))
                if unconfirmed and result.verdict in ("enqueued", "duplicate"):
                    result = Enqueued("failed", job.job_id, state=f"UNCONFIRMED {unconfirmed}")
                yield job, result

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

    def confirm(self) -> str | None:
        """Wait until what was written so far (a worker's claim) is on the replicas the
        settings ask for; why not, or None once it is (at once when none are asked)."""
        if not self.confirming:
            return None
        with self.client.pipeline(transaction=False) as pipe:
            for command in self.confirming:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return self._unconfirmed(pipe.execute(raise_on_error=False))

    def check(self, jobs: Sequence[dict[str, Any]]) -> list[Enqueued]:
        """What enqueueing *jobs* (each as ``named`` gives it) in order would do to each,
        decided by the enqueue script itself with nothing written: one call per order,
        pipelined. A batch's pre-check."""
        orders: dict[str, list[int]] = {}
        for index, job in enumerate(jobs):
            orders.setdefault(job["ref"], []).append(index)
        self.client.script_load(self._enqueue.script)
        with self.client.pipeline(transaction=False) as pipe:
            for ref, indexes in orders.items():
                keys = self._order_keys(ref)
                args = self._args([jobs[i] for i in indexes], check=True)
                pipe.evalsha(self._enqueue.sha, len(keys), *keys, *args)
            replies = pipe.execute(raise_on_error=False)
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

    def claim(
        self,
        ref: OrderRef,
        job_id: str,
        token: str,
        lease_seconds: float,
        rate: float = 0.0,
        burst: float = 0.0,
        calls: int = 1,
    ) -> Claim:
        """Take the job for *token* with a lease, if it is ready (or its lease ran out) and
        the account's rate limit (*rate* per second, bursts of *burst*; 0: none) allows the
        try's *calls* requests (2 when it reads the order first)."""
        reply = self._claim(
            keys=[
                ref.job_key(job_id),
                LEASES,
                DELAYED,
                ref.account_key("rate"),
                ref.account_key("pause"),
                READY,
                CLAIMED,
                self.queue,
            ],
            args=[
                _named(
                    member=ref.member(job_id),
                    token=token,
                    lease=lease_seconds,
                    rate=rate,
                    burst=burst,
                    window=self.window,
                    calls=calls,
                )
            ],
        )
        verdict = text(reply[0])
        if verdict == "run":
            hold = float(text(reply[4]))
            return Claim("run", int(reply[1]), int(reply[2]), text(reply[3]) == "1", hold=hold)
        if verdict == "wait":
            return Claim("wait", wait=float(text(reply[1])))
        return Claim("busy" if verdict == "busy" else "stale")

    def finish(
        self,
        ref: OrderRef,
        job_id: str,
        token: str,
        decision: Decision,
        attempt: str,
        *,
        delay: float = 0.0,
        uncertain: bool = False,
        retention_seconds: int,
        pause_account: float = 0.0,
        seen: str = "",
        kind: str = "",
        result: str = "",
        reconciled: str = "",
        durations: str = "",
    ) -> bool:
        """Record *attempt* and apply *decision*; False if the lease was lost meanwhile.

        *pause_account* > 0 (a 429's Retry-After) makes every job of the account wait that long.
        *seen*: the order as the try's GET read it (JSON), kept on the order for operators.
        *kind*, *result*, *reconciled* and *durations* are counted for the metrics
        (``vtex_relay.ops.metrics``; ``lua/finish.lua`` says their form).
        """
        reply = self._finish(
            keys=[
                ref.job_key(job_id),
                ref.attempts_key(job_id),
                LEASES,
                DELAYED,
                DEAD,
                self.queue,
                ref.account_key("pause"),
                ref.key("seen"),
            ],
            args=[
                _named(
                    ref=ref.tag,
                    job_id=job_id,
                    member=ref.member(job_id),
                    token=token,
                    outcome=decision,
                    delay=delay,
                    uncertain=uncertain,
                    retention=retention_seconds,
                    pause=pause_account,
                    window=self.window,
                    kind=kind,
                    result=result,
                    reconciled=reconciled,
                    durations=durations,
                ),
                attempt,
                seen,
            ],
        )
        return text(reply) == "ok"

    def sweep(self, lost_after: float, limit: int = 2000, worker: str = "") -> "Swept":
        """Give their turn back to due retries and throttled jobs whose slot is near, recover
        expired leases, pump the accounts' lines that are due, and replace the messages of
        jobs out for over *lost_after* seconds that are no longer in the queue. Records that
        a sweep ran and, if *worker* names one, that worker's heartbeat."""
        reply = self._sweep(
            keys=[DELAYED, LEASES, self.queue, READY, CLAIMED],
            args=[_named(limit=limit, lost_after=lost_after, window=self.window, worker=worker)],
        )
        next_due = float(text(reply[4]))
        retried, released, recovered, replaced = (int(n) for n in reply[:4])
        return Swept(retried, released, recovered, replaced, next_due if next_due >= 0 else None)

    def resolve(
        self, ref: OrderRef, job_id: str, action: Literal["replay", "discard"]
    ) -> str | None:
        """Replay or discard a dead job; None if done, else the job's actual state."""
        reply = self._resolve(
            keys=[ref.job_key(job_id), DEAD, DISCARDED, self.queue],
            args=[_named(ref=ref.tag, job_id=job_id, action=action, window=self.window)],
        )
        return None if text(reply) == "ok" else text(reply[1])


def _chunks(items: Iterable[Job], size: int) -> Iterator[list[Job]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _named(**args: Any) -> str:
    """A script's named arguments, as its first ``ARGV`` (JSON; the script's header lists them)."""
    return to_json(args).decode()


def _only(reply: Any) -> Any:
    """The reply to a write call's one job (the script replies per job), or its error."""
    return reply if isinstance(reply, redis.ResponseError) else reply[0]


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
