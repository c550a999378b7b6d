"""The ordering scripts against a pure-Python model of their contract (hypothesis, stateful).

Random producers, workers, sweeps and operators act on a few orders of a few accounts, on the
real Lua scripts in the test Redis. After every step the whole Redis state (each job, each
order, the queue, the global sets) must be what the model says, and the contract must hold
on what Redis holds, independently of the model:

- per order, in enqueue (seq) order, the job states read: finished (done or discarded)...,
  at most one head (ready, running, retrying or dead), then only waiting jobs ("queued"),
  and nothing waits behind an idle order: so jobs start one at a time, in enqueue order;
- every ready job has a message in the queue; a message of a job that is not ready is never
  claimed (the claim answers busy or stale);
- one invoice per order: a different one is a conflict, the same one a duplicate naming the
  first job, until the first is discarded; the same goes for any identical job;
- a job whose predecessor in the same batch, for the same order, was left out is skipped;
- once an order has invoices, an update naming another number is refused, and a tracking
  update before its invoice's tracking-number job too.

Time comes from Redis, so "later" is chosen up front: a claim takes either a long lease or
one that has already run out (a negative length), a retry waits either nothing or an hour.
"""

import itertools
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
from celery import Celery
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from vtex_relay.jobs import Job
from vtex_relay.keys import DEAD, DELAYED, DISCARDED, LEASES, OrderRef, text
from vtex_relay.messages import build_message, read_message
from vtex_relay.models import Kind
from vtex_relay.ordering import Claim, Decision, Enqueued, Ordering

QUEUE = "test-ordering-model"
ACCOUNTS = ("acme", "globex")
ORDER_IDS = ("1172452900788-01", "v501245lspt-01")
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

# A head job is the one job of its order that may be ready, running, retrying or dead.
HEAD_STATES = frozenset({"ready", "running", "retrying", "throttled", "dead"})
FINISHED_STATES = frozenset({"done", "discarded"})

APP = Celery("test-ordering-model", set_as_current=False)


@dataclass
class JobModel:
    job_id: str
    ref: OrderRef
    kind: Kind
    seq: int
    state: str = "queued"
    tries: int = 0
    dispatches: int = 0
    uncertain: bool = False
    attempts: int = 0
    token: str | None = None  # the lease holder's token while running
    lease_live: bool = False
    retry_due: bool = False


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
    st.sampled_from(ACCOUNTS),
    st.sampled_from(ORDER_IDS),
    st.sampled_from(("invoice", *KINDS)),  # invoices twice as often: more of them collide
    st.integers(0, len(INVOICE_BODIES) - 1),
)


def delivery_tag(raw: bytes | str) -> str:
    """The message's delivery tag, ``job_id.N``; the job id is also in the task's kwargs."""
    tag = json.loads(raw)["properties"]["delivery_tag"]
    assert isinstance(tag, str)
    _task, kwargs = read_message(raw)
    assert tag.rpartition(".")[0] == kwargs["job_id"], (tag, kwargs)
    return tag


class OrderingMachine(RuleBasedStateMachine):
    def __init__(self, client: "redis.Redis") -> None:
        super().__init__()
        client.flushall()  # one Redis per test, but a fresh one per example
        self.client = client
        self.ordering = Ordering(client, QUEUE)
        self.orders: dict[OrderRef, OrderModel] = {}
        self.jobs: dict[str, JobModel] = {}
        self.queue: Counter[str] = Counter()  # delivery tags of queued messages
        self.tokens: list[tuple[str, str]] = []  # (job id, token) of every granted claim
        self.counter = itertools.count(1)

    # -- the model ------------------------------------------------------------------------

    def dispatch(self, job: JobModel) -> None:
        job.dispatches += 1
        job.state = "ready"
        self.queue[f"{job.job_id}.{job.dispatches}"] += 1

    def advance(self, order: OrderModel) -> None:
        if order.head < len(order.jobs):
            order.head += 1
            self.dispatch(self.jobs[order.jobs[order.head - 1]])
        else:
            order.head = 0

    def order_of(self, job: JobModel) -> OrderModel:
        return self.orders[job.ref]

    def expect_claim(self, job: JobModel, token: str, live: bool) -> Claim:
        if job.state == "running":
            if job.lease_live:
                return Claim("busy")
            job.uncertain = True  # taken over: its holder may have made the call
        elif job.state != "ready":
            return Claim("stale")
        job.tries += 1
        job.state, job.token, job.lease_live = "running", token, live
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
        tag = delivery_tag(raw)
        assert self.queue[tag] > 0, f"message {tag} was not expected in the queue"
        self.queue[tag] -= 1
        self.queue += Counter()  # drop zero counts
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
            job.state, job.retry_due = "retrying", due
        elif outcome == "dead":
            job.state = "dead"
        else:
            job.state = "done"
            self.advance(self.order_of(job))

    # -- rules ----------------------------------------------------------------------------

    @rule(batch=st.lists(job_specs, min_size=1, max_size=3))
    def enqueue(self, batch: list[tuple[str, str, Kind, int]]) -> None:
        items: list[tuple[Job, str]] = []
        for account, order_id, kind, body_index in batch:
            body = INVOICE_BODIES[body_index] if kind == "invoice" else {"n": body_index}
            number = str(body["invoiceNumber"]) if kind == "invoice" else "NF1"
            # Ids are drawn in creation order: a run must replay exactly (no random uuid4).
            job_id = str(uuid.UUID(int=next(self.counter)))
            job = Job(
                job_id=job_id,
                kind=kind,
                account=account,
                order_id=order_id,
                invoice_number=number,
                body=body,
            )
            items.append((job, build_message(APP, job, QUEUE)))
        results = list(self.ordering.enqueue(items, batch=3))  # 2 pipelines for 3 jobs
        assert [job for job, _ in results] == [job for job, _ in items]
        previous: dict[OrderRef, tuple[str, str, int]] = {}  # each order's last job in the batch
        for (job, actual), (_, _, _, body_index) in zip(results, batch, strict=True):
            identity = (job.kind, job.invoice_number or "", body_index)
            expected = self.expect_enqueue(job, identity, previous.get(OrderRef.of(job)))
            previous[OrderRef.of(job)] = identity
            if actual.verdict == "unknown-invoice":  # the numbers, in Redis's hash order
                actual = actual._replace(state=" ".join(sorted((actual.state or "").split())))
            assert actual == expected, (job, actual)
            event(f"enqueue: {actual.verdict}")

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
        model = JobModel(job.job_id, ref, job.kind, seq=len(order.jobs))
        self.jobs[job.job_id] = model
        if order.head == 0:
            order.head = model.seq
            self.dispatch(model)
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
        message, a duplicate delivery) or an operator's replay or discard (refused unless dead).
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

    @rule()
    def sweep(self) -> None:
        retried = recovered = 0
        for job in self.jobs.values():
            if job.state == "retrying" and job.retry_due:
                retried += 1
                self.dispatch(job)
            elif job.state == "running" and not job.lease_live:
                recovered += 1
                job.uncertain, job.token = True, None
                self.dispatch(job)
        # Messages are never lost here, so no ready job is replaced (lost_after: an hour).
        assert self.ordering.sweep(lost_after=3600) == (retried, 0, recovered, 0)
        event(f"sweep: retried {min(retried, 2)}+, recovered {min(recovered, 2)}+")

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
            self.dispatch(job)
        else:
            job.state = "discarded"
            self.advance(self.order_of(job))

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def redis_state(self) -> None:
        snapshot = self.snapshot()
        self.check_model(snapshot)
        self.check_contract(snapshot)

    def snapshot(self) -> "Snapshot":
        """Everything the scripts keep, read in two round trips."""
        pipe = self.client.pipeline(transaction=False)
        pipe.lrange(QUEUE, 0, -1)
        pipe.zrange(LEASES, 0, -1)
        pipe.zrange(DELAYED, 0, -1)
        pipe.hgetall(DEAD)
        pipe.hgetall(DISCARDED)
        refs = list(self.orders)
        for ref in refs:
            pipe.hgetall(ref.key("order"))
            pipe.hgetall(ref.key("seqs"))
        for job in self.jobs.values():
            key = job.ref.job_key(job.job_id)
            pipe.hgetall(key)
            pipe.llen(key + ":attempts")
        replies = iter(pipe.execute())
        queue = [delivery_tag(raw) for raw in next(replies)]
        leases, delayed = ({text(m) for m in next(replies)} for _ in range(2))
        dead, discarded = (_texts(next(replies)) for _ in range(2))
        orders: dict[OrderRef, dict[str, str]] = {}
        seqs: dict[OrderRef, list[str]] = {}
        for ref in refs:
            orders[ref] = _texts(next(replies))
            by_seq = {int(k): v for k, v in _texts(next(replies)).items()}
            assert sorted(by_seq) == list(range(1, len(by_seq) + 1)), (ref, by_seq)
            seqs[ref] = [by_seq[seq] for seq in sorted(by_seq)]
        jobs = {job_id: (_texts(next(replies)), int(next(replies))) for job_id in self.jobs}
        # The states of the jobs Redis lists per order (not the model's list of them).
        for ref, ids in seqs.items():
            for job_id in ids:
                pipe.hget(ref.job_key(job_id), "state")
        states = iter(pipe.execute())
        order_states = {
            ref: [(job_id, text(next(states))) for job_id in ids] for ref, ids in seqs.items()
        }
        return Snapshot(queue, leases, delayed, dead, discarded, orders, order_states, jobs)

    def check_model(self, snapshot: "Snapshot") -> None:
        assert Counter(snapshot.queue) == self.queue
        for job in self.jobs.values():
            stored, attempts = snapshot.jobs[job.job_id]
            assert stored.get("state") == job.state, (job, stored)
            assert int(stored["seq"]) == job.seq, (job, stored)
            assert int(stored["tries"]) == job.tries, (job, stored)
            assert int(stored["dispatches"]) == job.dispatches, (job, stored)
            assert stored["uncertain"] == str(int(job.uncertain)), (job, stored)
            assert stored.get("lease_token") == job.token, (job, stored)
            assert attempts == job.attempts, job

        def in_state(state: str) -> set[str]:
            return {job.ref.member(j) for j, job in self.jobs.items() if job.state == state}

        def tags(state: str) -> dict[str, str]:
            return {j: job.ref.tag for j, job in self.jobs.items() if job.state == state}

        assert snapshot.leases == in_state("running")
        assert snapshot.delayed == in_state("retrying")
        assert snapshot.dead == tags("dead")
        assert snapshot.discarded == tags("discarded")
        for ref, order in self.orders.items():
            stored = snapshot.orders[ref]
            if not order.jobs:
                assert not stored, ref  # only refused invoices: nothing was written
                continue
            assert snapshot.order_states[ref] == [(j, self.jobs[j].state) for j in order.jobs]
            head = self.jobs[order.jobs[order.head - 1]] if order.head else None
            state = "idle" if head is None else "held" if head.state == "dead" else "active"
            assert int(stored["head"]) == order.head, (ref, stored)
            assert stored["state"] == state, (ref, stored)
            assert int(stored["last_seq"]) == len(order.jobs), (ref, stored)
            assert stored.get("invoice_job") == order.invoice_job, (ref, stored)

    @staticmethod
    def check_contract(snapshot: "Snapshot") -> None:
        """On Redis alone: one head per order, FIFO, no stranded job, no stranded message."""
        queued_jobs = {tag.rpartition(".")[0] for tag in snapshot.queue}
        for ref, jobs in snapshot.order_states.items():
            states = [state for _, state in jobs]
            heads = [i for i, state in enumerate(states) if state in HEAD_STATES]
            assert len(heads) <= 1, f"{ref}: more than one job under way: {states}"
            start = heads[0] if heads else len(states)
            before, after = states[:start], states[start + 1 :]
            assert set(before) <= FINISHED_STATES, f"{ref}: started out of order: {states}"
            assert set(after) <= {"queued"}, f"{ref}: not waiting behind the head: {states}"
            assert heads or "queued" not in states, f"{ref}: idle with waiting jobs: {states}"
            stranded = [j for j, state in jobs if state == "ready" and j not in queued_jobs]
            assert not stranded, f"{ref}: ready without a message: {stranded}"


@dataclass
class Snapshot:
    queue: list[str]  # delivery tags, newest first
    leases: set[str]
    delayed: set[str]
    dead: dict[str, str]
    discarded: dict[str, str]
    orders: dict[OrderRef, dict[str, str]]
    order_states: dict[OrderRef, list[tuple[str, str]]]  # (job id, state) in seq order
    jobs: dict[str, tuple[dict[str, str], int]]  # job hash, number of attempts recorded


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
    item = (job, build_message(APP, job, QUEUE))
    assert [result for _, result in ordering.enqueue([item])] == [Enqueued("enqueued", job.job_id)]
    list(ordering.enqueue([item]))  # the same job again: must not touch the first
    ref = OrderRef.of(job)
    assert redis_client.hget(ref.key("order"), "last_seq") == b"1"
    raw = redis_client.rpop(QUEUE)
    assert raw is not None
    assert redis_client.llen(QUEUE) == 0
    # The worker that gets the one message must be able to run the job (before the fix it
    # was "stale": the job was 'queued' behind itself and the order never moved again).
    assert ordering.claim(ref, job.job_id, "worker-1", LIVE_LEASE).verdict == "run"
