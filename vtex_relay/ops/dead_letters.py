"""What an operator sees of, and does to, jobs in Redis: dead letters and an order's jobs.

Reading never changes anything. ``replay`` and ``discard`` change state only through
``Ordering.resolve`` (one atomic script), so they are safe to run while workers are running.
Jobs are found by id through the ``DEAD`` and ``DISCARDED`` hashes, which map a job id to its
order; a live job is found through its order (``order_status``), since its keys are named
after the order.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import redis

from vtex_relay.errors import JobNotDead, UnknownJob, UnknownOrder
from vtex_relay.jobs import Attempt
from vtex_relay.store.keys import DEAD, DISCARDED, OrderRef, text
from vtex_relay.store.ordering import Ordering

_FAILED = ("retryable", "permanent")


@dataclass(frozen=True)
class JobRecord:
    """One job as stored, for display. Fields other than the id, order and state are None
    (or empty) when the job's record has expired: a done job is kept only for the retention.
    """

    job_id: str
    account: str
    order_id: str
    state: str
    kind: str | None = None
    seq: int | None = None
    invoice_number: str | None = None
    tries: int = 0
    due_at: datetime | None = None  # only while retrying or throttled
    enqueued_at: datetime | None = None
    body: dict[str, Any] | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last_error(self) -> Attempt | None:
        """The last attempt, if it failed (a job delivered after a failure has no last error)."""
        if self.attempts and self.attempts[-1].outcome in _FAILED:
            return self.attempts[-1]
        return None

    @property
    def last_error_line(self) -> str:
        """The last error on one line, e.g. ``permanent HTTP 400: Invalid invoice``; or ""."""
        error = self.last_error
        if error is None:
            return ""
        status = f" HTTP {error.status}" if error.status is not None else ""
        return f"{error.outcome}{status}: {' '.join(error.message.split())}"


@dataclass(frozen=True)
class InvoiceRecord:
    """One invoice the relay enqueued for an order, from its ledger (kept for the order's life,
    unlike a done job's record): number, ``Output`` or ``Input``, value in cents, job state."""

    number: str
    type: str
    value: int | None
    job_id: str
    state: str


@dataclass(frozen=True)
class OrderStatus:
    """An order's state (idle | active | held), its head's seq (0 when idle), its jobs and its
    invoices (in enqueue order)."""

    ref: OrderRef
    state: str
    head: int
    jobs: list[JobRecord]
    invoices: list[InvoiceRecord] = field(default_factory=list)
    vtex: dict[str, Any] | None = None  # the order as a worker's last GET read it


def list_dead(client: "redis.Redis") -> list[JobRecord]:
    """Every dead job, the one that died first first (by its last attempt's time)."""
    dead = {text(k): OrderRef.parse(text(v)) for k, v in client.hgetall(DEAD).items()}
    records = _load(client, dead)
    # Jobs whose record is gone or has no attempt (neither should happen) sort last.
    latest = datetime.max.replace(tzinfo=UTC)
    return sorted(records, key=lambda r: r.attempts[-1].at if r.attempts else latest)


def show(client: "redis.Redis", job_id: str) -> JobRecord:
    """The dead or discarded job *job_id* with its body and attempts; else ``UnknownJob``."""
    return _load(client, {job_id: _locate(client, job_id)})[0]


def replay(ordering: Ordering, client: "redis.Redis", job_id: str) -> OrderRef:
    """Run dead job *job_id* again, at its place in its order, with a fresh count of tries.

    It goes back in its account's line and its order becomes active again (the jobs behind it
    still wait for it). Raises ``UnknownJob`` or ``JobNotDead``. Returns the job's order.
    """
    return _resolve(ordering, client, job_id, "replay")


def discard(ordering: Ordering, client: "redis.Redis", job_id: str) -> OrderRef:
    """Give up on dead job *job_id*: its record stays (as discarded) and its order moves on.

    The order's next job gets its turn, or the order becomes idle if there is none. Raises
    ``UnknownJob`` or ``JobNotDead``. Returns the job's order.
    """
    return _resolve(ordering, client, job_id, "discard")


def order_status(client: "redis.Redis", ref: OrderRef) -> OrderStatus:
    """The order's state and its jobs in sequence (a job queued behind a dead head: "held");
    else ``UnknownOrder``."""
    seqs = sorted((int(s), text(j)) for s, j in client.hgetall(ref.key("seqs")).items())
    try:
        raw_order, raw_seen, *replies = _read_order(client, ref, seqs, transaction=True)
    except redis.exceptions.OutOfMemoryError:
        # A full Redis refuses MULTI; the operator needs this view most then, so read without.
        raw_order, raw_seen, *replies = _read_order(client, ref, seqs, transaction=False)
    if not raw_order:
        raise UnknownOrder(ref.account, ref.order_id)
    order = {text(k): text(v) for k, v in raw_order.items()}
    state = order.get("state", "idle")
    jobs = []
    for index, (seq, job_id) in enumerate(seqs):
        job = _record(ref, job_id, *replies[READS * index : READS * (index + 1)], seq=seq)
        if job.state == "queued" and state == "held":
            job = replace(job, state="held")
        jobs.append(job)
    invoices = _invoices(replies[-1], {job.job_id: job for job in jobs})
    seen = json.loads(raw_seen) if raw_seen else None
    return OrderStatus(ref, state, int(order.get("head", "0")), jobs, invoices, seen)


def _invoices(ledger: Mapping[Any, Any], jobs: Mapping[str, JobRecord]) -> list[InvoiceRecord]:
    found = []
    for number, entry in ledger.items():
        # "job_id digest type value"; an entry written before type and value were kept has
        # neither.
        job_id, _digest, kind, value = [*text(entry).split(" "), "", "", ""][:4]
        job = jobs.get(job_id)
        found.append(
            InvoiceRecord(
                text(number),
                kind,
                int(value) if value.isdigit() else None,
                job_id,
                job.state if job is not None else "done",
            )
        )
    seq_of = {job_id: job.seq or 0 for job_id, job in jobs.items()}
    return sorted(found, key=lambda invoice: seq_of.get(invoice.job_id, 0))


def _read_order(
    client: "redis.Redis", ref: OrderRef, seqs: list[tuple[int, str]], *, transaction: bool
) -> list[Any]:
    # One transaction (every key shares the order's hash tag) so the order's state and its
    # jobs' states are one consistent snapshot.
    pipe = client.pipeline(transaction=transaction)
    pipe.hgetall(ref.key("order"))
    pipe.get(ref.key("seen"))
    for _seq, job_id in seqs:
        _queue_reads(pipe, ref, job_id)
    pipe.hgetall(ref.key("invoices"))
    return pipe.execute()


def _resolve(
    ordering: Ordering, client: "redis.Redis", job_id: str, action: Literal["replay", "discard"]
) -> OrderRef:
    ref = _locate(client, job_id)
    state = ordering.resolve(ref, job_id, action)
    if state is not None:
        raise JobNotDead(job_id, state, action)
    return ref


def _locate(client: "redis.Redis", job_id: str) -> OrderRef:
    """The order of a dead or discarded job; ``UnknownJob`` if it is neither."""
    pipe = client.pipeline(transaction=False)
    pipe.hget(DEAD, job_id)
    pipe.hget(DISCARDED, job_id)
    dead, discarded = pipe.execute()
    tag = dead or discarded
    if tag is None:
        raise UnknownJob(job_id)
    return OrderRef.parse(text(tag))


def _load(client: "redis.Redis", jobs: Mapping[str, OrderRef]) -> list[JobRecord]:
    pipe = client.pipeline(transaction=False)
    for job_id, ref in jobs.items():
        _queue_reads(pipe, ref, job_id)
    replies = pipe.execute()
    return [
        _record(ref, job_id, *replies[READS * index : READS * (index + 1)])
        for index, (job_id, ref) in enumerate(jobs.items())
    ]


READS = 3  # per job: its hash, its attempts, its body


def _queue_reads(pipe: "redis.client.Pipeline", ref: OrderRef, job_id: str) -> None:
    pipe.hgetall(ref.job_key(job_id))
    pipe.lrange(ref.attempts_key(job_id), 0, -1)
    pipe.get(ref.body_key(job_id))


def _record(
    ref: OrderRef,
    job_id: str,
    raw_fields: Mapping[bytes | str, bytes | str],
    raw_attempts: list[bytes | str],
    raw_body: bytes | str | None,
    *,
    seq: int | None = None,
) -> JobRecord:
    if not raw_fields:  # expired with its retention: only done jobs expire
        return JobRecord(job_id, ref.account, ref.order_id, "done", seq=seq)
    fields = {text(k): text(v) for k, v in raw_fields.items()}
    due_at, enqueued_at = fields.get("due_at"), fields.get("enqueued_at")
    return JobRecord(
        job_id=job_id,
        account=ref.account,
        order_id=ref.order_id,
        state=fields.get("state", "gone"),
        kind=fields.get("kind"),
        seq=int(fields["seq"]) if "seq" in fields else seq,
        invoice_number=fields.get("invoice_number") or None,
        tries=int(fields.get("tries", "0")),
        due_at=datetime.fromtimestamp(float(due_at), UTC) if due_at else None,
        enqueued_at=datetime.fromisoformat(enqueued_at) if enqueued_at else None,
        body=json.loads(raw_body) if raw_body is not None else None,
        attempts=[Attempt.model_validate_json(raw) for raw in raw_attempts],
    )
