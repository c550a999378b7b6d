"""The ordering scripts against a pure-Python model of their contract (hypothesis, stateful).

Random producers, workers, sweeps and operators act on a few orders of a few accounts, on the
real Lua scripts in the test Redis, with a small dispatch window (1 or 2 messages per account,
fewer than an account's orders, so that jobs wait in their account's line). After every step
the whole Redis state (each job, each order, each account's line, window and counts, the queue
in its order, the global sets) must be what the model says, and the contract must hold on what
Redis holds, independently of the model:

- per order, in enqueue (seq) order, the job states read: finished (done or discarded)...,
  at most one head (waiting, ready, running, retrying, throttled or dead), then only queued
  jobs, and nothing is queued behind an idle order: so jobs start one at a time, in enqueue
  order;
- every ready job has its latest message in the queue (once), is in its account's window
  (``out``) and in ``vr:ready``, and nothing else is in either; a message of a job that is not
  ready (a stale duplicate: its job was claimed without it) is never claimed (the claim
  answers busy or stale);
- every waiting job is in its account's line exactly once, and the line holds nothing else;
- an account never has more than ``window`` messages out, and a job waits in the line only
  while the window is full (or the account is due in ``vr:lines``, for its rate or a pause);
- each account's counts hash holds the number of its live jobs in each state but waiting and
  ready (its line's length and its window's size), and ``held``
  the number of its jobs queued behind a dead head;
- a message's task is the job's kind, its keyword arguments are ``Job.message_kwargs()``,
  Flower's ``kwargsrepr`` is them without the body; a live job keeps its body, a done one not;
- one invoice per order: a different one is a conflict, the same one a duplicate naming the
  first job, until the first is discarded; the same goes for any identical job;
- a job whose predecessor in the same batch, for the same order, was left out is skipped;
- once an order has invoices, an update naming another number is refused, and a tracking
  update before its invoice's tracking-number job too.

Time comes from Redis, so "later" is chosen up front: a claim takes either a long lease or
one that has already run out (a negative length), a retry waits either nothing or an hour.
Claims pass no rate limit and no 429 pauses an account, so no account is ever due in
``vr:lines`` and no job is ever throttled.
"""

import itertools
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic_core import to_json

from tests.processes import read_message
from vtex_relay.jobs import Job
from vtex_relay.models import Kind
from vtex_relay.store.enqueuing import Enqueued
from vtex_relay.store.keys import (
    DEAD,
    DELAYED,
    DISCARDED,
    LEASES,
    LINES,
    PIN,
    READY,
    OrderRef,
    account,
    text,
)
from vtex_relay.store.ordering import Claim, Decision, Ordering
from vtex_relay.store.scripts import function

QUEUE = "test-ordering-model"
ACCOUNTS = ("acme", "globex")
# Three orders per account and a window of one or two: an account can have more heads whose
# turn has come than messages allowed out, so its line fills.
ORDER_IDS = ("1172452900788-01", "v501245lspt-01", "1172452900790-01")
WINDOWS = (1, 2)
KINDS: tuple[Kind, ...] = ("invoice", "tracking-number", "tracking")
# Invoice bodies: 0 and 1 share a number but differ (a conflict), 2 is another invoice.
INVOICE_BODIES: tuple[dict[str, Any], ...] = (
    {"invoiceNumber": "NF1", "invoiceValue": 1000, "type": "Output"},
    {"invoiceNumber": "NF1", "invoiceValue": 2500, "type": "Output"},
    {"invoiceNumber": "NF2", "invoiceValue": 1000, "type": "Output"},
)
LIVE_LEASE = 3600.0
EXPIRED_LEASE = -1.0  # runs out before the claim returns: as if the worker hung or died
LONG_DELAY = 3600.0
RETENTION = 3600

# A head job is the one job of its order whose turn has come: waiting, ready, running,
# retrying, throttled or dead.
HEAD_STATES = frozenset({"waiting", "ready", "running", "retrying", "throttled", "dead"})
FINISHED_STATES = frozenset({"done", "discarded"})
# The states an account's counts hash counts (done and discarded are records).
LIVE_STATES = HEAD_STATES | {"queued"}
LINE_STATES = {"waiting", "ready"}


@dataclass
class JobModel:
    job_id: str
    ref: OrderRef
    kind: Kind
    seq: int
    kwargs: dict[str, Any]  # Job.message_kwargs(): what its messages must carry
    body: dict[str, Any]
    state: str = "queued"
    tries: int = 0
    dispatches: int = 0
    uncertain: bool = False
    attempts: int = 0
    token: str | None = None  # the lease holder's token while running
    lease_live: bool = False
    retry_due: bool = False
    # When its lease (running) or its retry (retrying) was last set: the sweep takes due ones
    # in that order (by lease expiry, by due time), and each goes to the front of its line.
    since: int = 0


@dataclass
class OrderModel:
    jobs: list[str] = field(default_factory=list)  # job ids in seq order (seq = index + 1)
    head: int = 0  # seq of the head job; 0: idle
    invoice_job: str | None = None
    invoice_body: int | None = None  # index in INVOICE_BODIES
    invoice_number: str | None = None
    # (kind, invoice number, body index) -> the job enqueued with them: the identical job again
    # is a duplicate of it, until it is discarded.
    identical: dict[tuple[str, str, int], str] = field(default_factory=dict)
    ledger: set[str] = field(default_factory=set)  # invoice numbers ever enqueued
    tracked: set[str] = field(default_factory=set)  # numbers given a tracking number


OUTCOMES = st.sampled_from(("done", "done", "retry", "dead"))
RESOLUTIONS: tuple[Literal["replay", "discard"], ...] = ("replay", "discard")
ACTIONS = st.sampled_from(RESOLUTIONS)
job_specs = st.tuples(
    st.sampled_from((*ACCOUNTS, ACCOUNTS[0])),  # one account busier: its line fills more often
    st.sampled_from(ORDER_IDS),
    st.sampled_from(("invoice", *KINDS)),  # invoices twice as often: more of them collide
    st.integers(0, len(INVOICE_BODIES) - 1),
)


@dataclass(frozen=True)
class Message:
    """A queued Celery message, as a worker reads it."""

    tag: str  # delivery tag: ``job_id.N``, N the job's dispatch count when it was pushed
    task: str
    kwargs: dict[str, Any]
    summary: dict[str, Any]  # Flower's kwargsrepr

    @property
    def job_id(self) -> str:
        return self.tag.rpartition(".")[0]

    @property
    def dispatch(self) -> int:
        return int(self.tag.rpartition(".")[2])


def parse_message(raw: bytes | str) -> Message:
    """The message's delivery tag, task and arguments; its ids must agree with each other."""
    envelope = json.loads(raw)
    tag = envelope["properties"]["delivery_tag"]
    assert isinstance(tag, str)
    task, kwargs = read_message(raw)
    headers = envelope["headers"]
    job_id = tag.rpartition(".")[0]
    assert job_id == kwargs["job_id"] == headers["id"], (tag, kwargs, headers)
    assert headers["task"] == task, headers
    summary = json.loads(headers["kwargsrepr"])
    assert isinstance(summary, dict), headers
    return Message(tag, task, kwargs, summary)


class OrderingMachine(RuleBasedStateMachine):
    def __init__(self, client: "redis.Redis") -> None:
        super().__init__()
        client.flushall()  # one Redis per test, but a fresh one per example
        # Loading the scripts' library is a change Redis counts (writes): done before any rule,
        # so the pre-check's "nothing written" is about data alone.
        function(client, "enqueue").load()
        self.client = client
        self.window = WINDOWS[-1]
        self.ordering = Ordering(client, QUEUE, window=self.window)
        self.orders: dict[OrderRef, OrderModel] = {}
        self.jobs: dict[str, JobModel] = {}
        self.queue: list[str] = []  # delivery tags of queued messages, oldest (next out) first
        self.lines: dict[str, list[str]] = {name: [] for name in ACCOUNTS}  # front first
        self.out: dict[str, set[str]] = {name: set() for name in ACCOUNTS}  # ready job ids
        self.tokens: list[tuple[str, str]] = []  # (job id, token) of every granted claim
        self.counter = itertools.count(1)

    @initialize(window=st.sampled_from(WINDOWS))
    def start(self, window: int) -> None:
        self.window = window
        self.ordering = Ordering(self.client, QUEUE, window=window)
        event(f"window: {window}")

    # -- the model ------------------------------------------------------------------------

    def to_line(self, job: JobModel, front: bool) -> None:
        """The job's turn has come: into its account's line (the front if it is late)."""
        job.state = "waiting"
        line = self.lines[job.ref.account]
        if front:
            if line:
                event("line: late job put ahead of waiting ones")
            line.insert(0, job.job_id)
        else:
            line.append(job.job_id)
        self.pump(job.ref.account)
        if job.state == "waiting":
            event(f"line: {'late job at the front' if front else 'job at the back'}, window full")

    def pump(self, name: str) -> None:
        """Dispatch from the front of the account's line while its window has room."""
        line, out = self.lines[name], self.out[name]
        while line and len(out) < self.window:
            job = self.jobs[line.pop(0)]
            assert job.state == "waiting", job
            job.state = "ready"
            job.dispatches += 1
            self.queue.append(f"{job.job_id}.{job.dispatches}")  # LPUSH: at the back
            out.add(job.job_id)
        if line:
            event("pump: window full, jobs left waiting in the line")

    def advance(self, order: OrderModel) -> None:
        if order.head < len(order.jobs):
            order.head += 1
            self.to_line(self.jobs[order.jobs[order.head - 1]], front=False)
        else:
            order.head = 0

    def order_of(self, job: JobModel) -> OrderModel:
        return self.orders[job.ref]

    def expect_claim(self, job: JobModel, token: str, live: bool) -> Claim:
        taken_over = job.state == "running"
        if taken_over:
            if job.lease_live:
                return Claim("busy")
            job.uncertain = True  # taken over: its holder may have made the call
        elif job.state != "ready":
            return Claim("stale")
        job.tries += 1
        job.state, job.token, job.lease_live = "running", token, live
        job.since = next(self.counter)
        if not taken_over:  # its message arrived: out of the window, the next one in
            self.out[job.ref.account].remove(job.job_id)
            self.pump(job.ref.account)
        return Claim("run", job.seq, job.tries, job.uncertain)

    def claim(self, job: JobModel, live: bool) -> str | None:
        """Claim *job* as a new worker; the worker's token if it may run the job."""
        token = f"worker-{next(self.counter)}"
        actual = self.ordering.claim(
            job.ref, job.job_id, token, LIVE_LEASE if live else EXPIRED_LEASE
        )
        expected = self.expect_claim(job, token, live)
        assert actual == expected, (job, actual, expected)
        event(f"claim: {actual.verdict}{' (uncertain)' if actual.uncertain else ''}")
        if actual.verdict != "run":
            return None
        self.tokens.append((job.job_id, token))
        return token

    def pop(self) -> JobModel:
        """Take the oldest message (Celery BRPOPs the queue): the job it names."""
        raw = self.client.rpop(QUEUE)
        assert isinstance(raw, bytes | str)
        tag = parse_message(raw).tag
        assert self.queue, f"message {tag} was not expected in the queue"
        expected = self.queue.pop(0)
        assert tag == expected, f"message {tag} came out of the queue before {expected}"
        return self.jobs[tag.rpartition(".")[0]]

    def finish_job(
        self, job: JobModel, token: str, outcome: Decision, due: bool, uncertain: bool
    ) -> None:
        attempt = json.dumps({"n": next(self.counter), "token": token})
        actual = self.ordering.finish(
            job.ref,
            job.job_id,
            token,
            outcome,
            attempt,
            delay=0.0 if due else LONG_DELAY,
            uncertain=uncertain,
            retention_seconds=RETENTION,
        )
        job.attempts += 1  # recorded even when the lease was lost
        expected = job.state == "running" and job.token == token
        assert actual == expected, (job, token, actual)
        event(f"finish: {outcome if actual else 'lost'}")
        if not expected:
            return
        job.token, job.lease_live = None, False
        job.uncertain = job.uncertain or uncertain
        if outcome == "retry":
            job.state, job.retry_due, job.since = "retrying", due, next(self.counter)
        elif outcome == "dead":
            job.state = "dead"
        else:
            job.state = "done"
            self.advance(self.order_of(job))

    # -- rules ----------------------------------------------------------------------------

    @rule(batch=st.lists(job_specs, min_size=1, max_size=3))
    def enqueue(self, batch: list[tuple[str, str, Kind, int]]) -> None:
        jobs: list[Job] = []
        for name, order_id, kind, body_index in batch:
            body = INVOICE_BODIES[body_index] if kind == "invoice" else {"n": body_index}
            number = str(body["invoiceNumber"]) if kind == "invoice" else "NF1"
            # Ids are drawn in creation order: a run must replay exactly (no random uuid4).
            job_id = str(uuid.UUID(int=next(self.counter)))
            jobs.append(
                Job(
                    job_id=job_id,
                    kind=kind,
                    account=name,
                    order_id=order_id,
                    invoice_number=number,
                    body=body,
                )
            )
        # A batch's pre-check: the same script, writing nothing, must decide as the enqueue.
        dirty = self.writes()
        checked = self.ordering.check([Ordering.named(job, "") for job in jobs])
        assert self.writes() == dirty  # nothing written
        results = list(self.ordering.enqueue(jobs, batch=3))  # 2 pipelines for 3 jobs
        assert [job for job, _ in results] == jobs
        for (job, actual), check in zip(results, checked, strict=True):
            if actual.verdict == "skipped":  # the check does not skip: it reports every line
                continue
            if check.verdict == "conflict" and check.job_id in {j.job_id for j in jobs}:
                # Held by an earlier job of the batch: not enqueued yet when checked, so its
                # state is not known (the batch's message names its line instead).
                actual = actual._replace(state=check.state)
            assert _sorted(check) == _sorted(actual), (job, check, actual)
        previous: dict[OrderRef, tuple[str, str, int]] = {}  # each order's last job in the batch
        for (job, actual), (_, _, _, body_index) in zip(results, batch, strict=True):
            identity = (job.kind, job.invoice_number or "", body_index)
            expected = self.expect_enqueue(job, identity, previous.get(OrderRef.of(job)))
            previous[OrderRef.of(job)] = identity
            if actual.verdict == "unknown-invoice":  # the numbers, in Redis's hash order
                actual = actual._replace(state=" ".join(sorted((actual.state or "").split())))
            assert actual == expected, (job, actual)
            event(f"enqueue: {actual.verdict}")

    def writes(self) -> int:
        """Redis's count of changes to its data (it never goes down)."""
        return int(self.client.info("persistence")["rdb_changes_since_last_save"])

    def expect_enqueue(
        self, job: Job, identity: tuple[str, str, int], after: tuple[str, str, int] | None
    ) -> Enqueued:
        ref = OrderRef.of(job)
        order = self.orders.setdefault(ref, OrderModel())
        if after is not None and after not in order.identical:
            return Enqueued("skipped", job.job_id)
        body_index = identity[2]
        same = order.identical.get(identity)
        if same is not None and self.jobs[same].state != "discarded":
            return Enqueued("duplicate", same)
        number = job.invoice_number or ""
        if job.kind != "invoice" and order.ledger:
            if number not in order.ledger:
                return Enqueued("unknown-invoice", job.job_id, state=" ".join(sorted(order.ledger)))
            if job.kind == "tracking" and number not in order.tracked:
                return Enqueued("untracked", job.job_id)
        if job.kind == "invoice":
            if order.invoice_job is not None:
                first = self.jobs[order.invoice_job]
                event(f"enqueue: invoice after a {first.state} one")
                if first.state != "discarded":
                    if order.invoice_body == body_index:
                        return Enqueued("duplicate", first.job_id)
                    return Enqueued("conflict", first.job_id, order.invoice_number, first.state)
            order.invoice_job, order.invoice_body = job.job_id, body_index
            order.invoice_number = job.invoice_number
            order.ledger.add(number)
        if job.kind == "tracking-number":
            order.tracked.add(number)
        order.identical[identity] = job.job_id
        order.jobs.append(job.job_id)
        model = JobModel(
            job.job_id, ref, job.kind, len(order.jobs), job.message_kwargs(), dict(job.body)
        )
        self.jobs[job.job_id] = model
        if order.head == 0:
            order.head = model.seq
            self.to_line(model, front=False)
        return Enqueued("enqueued", job.job_id)

    @precondition(lambda self: bool(self.queue))
    @rule(outcome=OUTCOMES, due=st.booleans(), uncertain=st.booleans())
    def work(self, outcome: Decision, due: bool, uncertain: bool) -> None:
        """A worker's whole run: take a message, claim its job, try it, record the outcome."""
        job = self.pop()
        token = self.claim(job, live=True)
        if token is not None:
            self.finish_job(job, token, outcome, due, uncertain)

    @precondition(lambda self: bool(self.queue))
    @rule(live=st.booleans())
    def consume(self, live: bool) -> None:
        """A worker takes a message and claims its job, and has not finished (yet)."""
        self.claim(self.pop(), live)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data(), live=st.booleans(), action=st.sampled_from(("claim", *RESOLUTIONS)))
    def stray(
        self, data: st.DataObject, live: bool, action: Literal["claim", "replay", "discard"]
    ) -> None:
        """Any job, whatever its state: a claim without a message (kombu restoring an unacked
        message, a duplicate delivery: the job's own message then stays in the queue, stale)
        or an operator's replay or discard (refused unless dead).
        """
        job = self.jobs[data.draw(st.sampled_from(list(self.jobs)), label="job")]
        if action == "claim":
            self.claim(job, live)
        else:
            self.resolve(job, action)

    @precondition(lambda self: bool(self.tokens))
    @rule(
        data=st.data(),
        holder=st.booleans(),
        outcome=OUTCOMES,
        due=st.booleans(),
        uncertain=st.booleans(),
    )
    def finish(
        self, data: st.DataObject, holder: bool, outcome: Decision, due: bool, uncertain: bool
    ) -> None:
        """A worker that claimed earlier finishes: the holder, or one whose lease was lost."""
        holders = [(j, t) for j, t in self.tokens if self.jobs[j].token == t]
        pool = holders if holder and holders else self.tokens
        job_id, token = data.draw(st.sampled_from(pool), label="claim")
        self.finish_job(self.jobs[job_id], token, outcome, due, uncertain)

    @rule(limit=st.sampled_from((2000, 1)))
    def sweep(self, limit: int) -> None:
        # Due retries (by due time), then expired leases (by expiry), at most *limit* of each:
        # each to the front of its account's line, which is pumped at once.
        retries = sorted(
            (job for job in self.jobs.values() if job.state == "retrying" and job.retry_due),
            key=lambda job: job.since,
        )[:limit]
        expired = sorted(
            (job for job in self.jobs.values() if job.state == "running" and not job.lease_live),
            key=lambda job: job.since,
        )[:limit]
        for job in retries:
            self.to_line(job, front=True)
        for job in expired:
            job.uncertain, job.token = True, None
            self.to_line(job, front=True)
        # Messages are never lost here, so no ready job is replaced (lost_after: an hour), and
        # no account waits for its rate or a pause (no line is due: next_due is None).
        swept = self.ordering.sweep(lost_after=3600, limit=limit)
        assert swept[:4] == (len(retries), 0, len(expired), 0), swept
        assert swept.next_due is None, swept
        event(f"sweep: retried {min(len(retries), 2)}+, recovered {min(len(expired), 2)}+")

    @precondition(lambda self: any(job.state == "dead" for job in self.jobs.values()))
    @rule(data=st.data(), action=ACTIONS)
    def resolve_dead(self, data: st.DataObject, action: Literal["replay", "discard"]) -> None:
        dead = [job_id for job_id, job in self.jobs.items() if job.state == "dead"]
        self.resolve(self.jobs[data.draw(st.sampled_from(dead), label="job")], action)

    def resolve(self, job: JobModel, action: Literal["replay", "discard"]) -> None:
        expected = None if job.state == "dead" else job.state
        assert self.ordering.resolve(job.ref, job.job_id, action) == expected, job
        event(f"resolve: {action if expected is None else 'refused'}")
        if expected is not None:
            return
        if action == "replay":
            job.tries = 0
            self.to_line(job, front=False)
        else:
            job.state = "discarded"
            self.advance(self.order_of(job))

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def redis_state(self) -> None:
        snapshot = self.snapshot()
        self.check_model(snapshot)
        self.check_contract(snapshot, self.window)

    def snapshot(self) -> "Snapshot":
        """Everything the scripts keep, read in two round trips."""
        pipe = self.client.pipeline(transaction=False)
        pipe.lrange(QUEUE, 0, -1)
        pipe.zrange(LEASES, 0, -1)
        pipe.zrange(DELAYED, 0, -1)
        pipe.zrange(READY, 0, -1)
        pipe.zrange(LINES, 0, -1)
        pipe.hgetall(DEAD)
        pipe.hgetall(DISCARDED)
        for name in ACCOUNTS:
            pipe.lrange(account(name, "line"), 0, -1)
            pipe.smembers(account(name, "out"))
            pipe.hgetall(account(name, "jobs"))
        refs = list(self.orders)
        for ref in refs:
            pipe.hgetall(ref.key("order"))
            pipe.hgetall(ref.key("seqs"))
        for job in self.jobs.values():
            key = job.ref.job_key(job.job_id)
            pipe.hgetall(key)
            pipe.llen(key + ":attempts")
            pipe.get(key + ":body")
        replies = iter(pipe.execute())
        queue = [parse_message(raw) for raw in next(replies)]
        # Less the sweep's PIN (keys.py), which is no job.
        leases, delayed, ready, lines_due = (
            {text(m) for m in next(replies)} - {PIN} for _ in range(4)
        )
        dead, discarded = (_texts(next(replies)) for _ in range(2))
        accounts: dict[str, AccountSnapshot] = {}
        for name in ACCOUNTS:
            line = [text(m) for m in next(replies)]
            out = {text(m) for m in next(replies)}
            counts = {k: int(v) for k, v in _texts(next(replies)).items()}
            accounts[name] = AccountSnapshot(line, out, counts)
        orders: dict[OrderRef, dict[str, str]] = {}
        seqs: dict[OrderRef, list[str]] = {}
        for ref in refs:
            orders[ref] = _texts(next(replies))
            by_seq = {int(k): v for k, v in _texts(next(replies)).items()}
            assert sorted(by_seq) == list(range(1, len(by_seq) + 1)), (ref, by_seq)
            seqs[ref] = [by_seq[seq] for seq in sorted(by_seq)]
        jobs: dict[str, tuple[dict[str, str], int, str | None]] = {}
        for job_id in self.jobs:
            stored, attempts, body = next(replies), next(replies), next(replies)
            jobs[job_id] = (_texts(stored), int(attempts), None if body is None else text(body))
        # The states of the jobs Redis lists per order (not the model's list of them).
        for ref, ids in seqs.items():
            for job_id in ids:
                pipe.hmget(ref.job_key(job_id), "state", "dispatches")
        fields = iter(pipe.execute())
        order_states: dict[OrderRef, list[tuple[str, str, int]]] = {}
        for ref, ids in seqs.items():
            order_states[ref] = []
            for job_id in ids:
                state, dispatches = next(fields)
                order_states[ref].append((job_id, text(state), int(dispatches or 0)))
        return Snapshot(
            queue,
            leases,
            delayed,
            ready,
            lines_due,
            dead,
            discarded,
            accounts,
            orders,
            order_states,
            jobs,
        )

    def check_model(self, snapshot: "Snapshot") -> None:
        assert [m.tag for m in reversed(snapshot.queue)] == self.queue
        for message in snapshot.queue:
            job = self.jobs[message.job_id]
            assert message.task == job.kind, (message, job)
            assert list(message.kwargs.items()) == list(job.kwargs.items()), (message, job)
            summary = {k: v for k, v in job.kwargs.items() if k != "body"}
            assert list(message.summary.items()) == list(summary.items()), (message, job)
        for job in self.jobs.values():
            stored, attempts, body_key = snapshot.jobs[job.job_id]
            assert stored.get("state") == job.state, (job, stored)
            assert int(stored["seq"]) == job.seq, (job, stored)
            # Counters not written yet read as 0.
            assert int(stored.get("tries", 0)) == job.tries, (job, stored)
            assert int(stored.get("dispatches", 0)) == job.dispatches, (job, stored)
            assert stored.get("uncertain", "0") == str(int(job.uncertain)), (job, stored)
            assert stored.get("lease_token") == job.token, (job, stored)
            assert attempts == job.attempts, job
            assert stored["kind"] == job.kind, (job, stored)
            assert "message" not in stored, (job, stored)  # built at dispatch, not stored
            # The body, compact JSON, in a key of its own (job:ID:body), not in the hash; a done
            # job is a record and keeps none.
            assert "body" not in stored, (job, stored)
            expected = None if job.state == "done" else to_json(job.body).decode()
            assert body_key == expected, (job, body_key)

        def in_state(state: str) -> set[str]:
            return {job.ref.member(j) for j, job in self.jobs.items() if job.state == state}

        def tags(state: str) -> dict[str, str]:
            return {j: job.ref.tag for j, job in self.jobs.items() if job.state == state}

        assert snapshot.leases == in_state("running")
        assert snapshot.delayed == in_state("retrying")
        assert snapshot.ready == in_state("ready")
        assert snapshot.lines_due == set()  # no rate, no pause: never waiting on a clock
        assert snapshot.dead == tags("dead")
        assert snapshot.discarded == tags("discarded")
        for name in ACCOUNTS:
            stored_account = snapshot.accounts[name]
            line = [self.jobs[j].ref.member(j) for j in self.lines[name]]
            assert stored_account.line == line, (name, stored_account.line, line)
            assert stored_account.out == {self.jobs[j].ref.member(j) for j in self.out[name]}
        for ref, order in self.orders.items():
            stored = snapshot.orders[ref]
            if not order.jobs:
                assert not stored, ref  # only refused invoices: nothing was written
                continue
            states = [(j, state) for j, state, _ in snapshot.order_states[ref]]
            assert states == [(j, self.jobs[j].state) for j in order.jobs]
            head = self.jobs[order.jobs[order.head - 1]] if order.head else None
            state = "idle" if head is None else "held" if head.state == "dead" else "active"
            assert int(stored["head"]) == order.head, (ref, stored)
            assert stored["state"] == state, (ref, stored)
            assert int(stored["last_seq"]) == len(order.jobs), (ref, stored)
            assert stored.get("invoice_job") == order.invoice_job, (ref, stored)

    @staticmethod
    def check_contract(snapshot: "Snapshot", window: int) -> None:
        """On Redis alone: one head per order, FIFO, no stranded job, no stranded message,
        each account's line, window and counts."""
        messages = Counter(m.tag for m in snapshot.queue)
        ready: dict[str, set[str]] = {name: set() for name in ACCOUNTS}
        waiting: dict[str, Counter[str]] = {name: Counter() for name in ACCOUNTS}
        counts: dict[str, Counter[str]] = {name: Counter() for name in ACCOUNTS}
        dispatches: dict[str, int] = {}
        for ref, jobs in snapshot.order_states.items():
            states = [state for _, state, _ in jobs]
            heads = [i for i, state in enumerate(states) if state in HEAD_STATES]
            assert len(heads) <= 1, f"{ref}: more than one job under way: {states}"
            start = heads[0] if heads else len(states)
            before, after = states[:start], states[start + 1 :]
            assert set(before) <= FINISHED_STATES, f"{ref}: started out of order: {states}"
            assert set(after) <= {"queued"}, f"{ref}: not waiting behind the head: {states}"
            assert heads or "queued" not in states, f"{ref}: idle with waiting jobs: {states}"
            # Waiting and ready jobs are counted by the line and the window, not the hash.
            counts[ref.account].update(s for s in states if s in LIVE_STATES - LINE_STATES)
            if heads and states[start] == "dead":
                counts[ref.account]["held"] += len(after)
            for job_id, state, n in jobs:
                dispatches[job_id] = n
                if state == "ready":
                    ready[ref.account].add(ref.member(job_id))
                    current = messages[f"{job_id}.{n}"]
                    assert current == 1, f"{ref}: ready {job_id} has {current} messages .{n}"
                elif state == "waiting":
                    waiting[ref.account][ref.member(job_id)] += 1
        for message in snapshot.queue:  # a message of a job not ready is a stale duplicate
            assert message.job_id in dispatches, f"message of an unknown job: {message.tag}"
            assert message.dispatch <= dispatches[message.job_id], message.tag
        assert snapshot.ready == set().union(*ready.values()), "vr:ready is not the ready jobs"
        for name in ACCOUNTS:
            stored = snapshot.accounts[name]
            assert stored.out == ready[name], f"{name}: out is not its ready jobs: {stored.out}"
            assert len(stored.out) <= window, f"{name}: over its window: {stored.out}"
            assert Counter(stored.line) == waiting[name], f"{name}: line is not its waiting jobs"
            assert not stored.line or len(stored.out) == window or name in snapshot.lines_due, (
                f"{name}: jobs wait in its line with room in its window: {stored}"
            )
            assert all(n >= 0 for n in stored.counts.values()), (name, stored.counts)
            nonzero = {state: n for state, n in stored.counts.items() if n}
            assert nonzero == dict(+counts[name]), f"{name}: counts {nonzero} != {counts[name]}"


@dataclass
class AccountSnapshot:
    line: list[str]  # members, front first
    out: set[str]
    counts: dict[str, int]


@dataclass
class Snapshot:
    queue: list[Message]  # newest first
    leases: set[str]
    delayed: set[str]
    ready: set[str]
    lines_due: set[str]  # accounts in vr:lines
    dead: dict[str, str]
    discarded: dict[str, str]
    accounts: dict[str, AccountSnapshot]
    orders: dict[OrderRef, dict[str, str]]
    # (job id, state, dispatches) in seq order
    order_states: dict[OrderRef, list[tuple[str, str, int]]]
    # the job's hash, the number of attempts recorded, its body key (job:ID:body) if any
    jobs: dict[str, tuple[dict[str, str], int, str | None]]


def _sorted(result: Enqueued) -> Enqueued:
    """*result* with an ``unknown-invoice``'s numbers sorted (Redis gives a hash's order)."""
    if result.verdict != "unknown-invoice":
        return result
    return result._replace(state=" ".join(sorted((result.state or "").split())))


def _texts(mapping: Any) -> dict[str, str]:
    return {text(k): text(v) for k, v in mapping.items()}


def test_ordering_scripts_follow_the_model(redis_client: "redis.Redis") -> None:
    class Machine(OrderingMachine):  # a class, as run_state_machine_as_test is typed
        def __init__(self) -> None:
            super().__init__(redis_client)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=150,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_enqueueing_the_same_job_again_changes_nothing(redis_client: "redis.Redis") -> None:
    ordering = Ordering(redis_client, QUEUE)
    job = Job(
        kind="tracking", account="acme", order_id=ORDER_IDS[0], invoice_number="NF1", body={"n": 0}
    )
    assert [result for _, result in ordering.enqueue([job])] == [Enqueued("enqueued", job.job_id)]
    list(ordering.enqueue([job]))  # the same job again: must not touch the first
    ref = OrderRef.of(job)
    assert redis_client.hget(ref.key("order"), "last_seq") == b"1"
    raw = redis_client.rpop(QUEUE)
    assert isinstance(raw, bytes | str)
    assert redis_client.llen(QUEUE) == 0
    assert read_message(raw) == (job.kind, job.message_kwargs())
    # The worker that gets the one message must be able to run the job (before the fix it
    # was "stale": the job was 'queued' behind itself and the order never moved again).
    assert ordering.claim(ref, job.job_id, "worker-1", LIVE_LEASE).verdict == "run"
