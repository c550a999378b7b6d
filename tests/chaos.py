"""What the randomised end-to-end tests share (``test_chaos``, ``test_frozen_workers``).

A seeded ``random.Random`` plans the orders (bodies, which producer thread enqueues which
order, how the threads interleave); the seed is printed and ``CHAOS_SEED`` replays it. Worker
processes run as a ``Fleet``. What is checked, for every order, from the sandbox's request log
and from Redis (``check_orders``):

- applied writes: exactly invoice, tracking-number, PUT1, PUT2, PUT3 in that order. The only
  tolerated extra is a PUT applied a second time right after its first application when the
  first application's answer was lost by the sandbox (fault ``apply_drop``/``apply_stall``):
  that is "at least once" for an idempotent-looking PUT. The invoice and the PATCH have no such
  allowance, and a PUT applied three times, or twice with anything in between, is a violation;
- ``invoicePosts == {number: 1}``: the invoice applied exactly once;
- ordering: no write request of job k+1 was received before job k was applied, nor before the
  last write request of job k was received (one job of an order at a time);
- Redis: every job ``done``, the order ``idle``; and once the run is over (``drained``) the
  Celery queue, ``vr:delayed``, ``vr:leases`` and ``vr:dead`` are empty, and kombu kept no
  "unacked" copy (its ack emulation is off: worker/app.py).
"""

import contextlib
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from tests.harness import start_workers, stop_all
from tests.processes import Worker
from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.models import Kind
from vtex_relay.ops.backlog import account_statuses
from vtex_relay.ops.dead_letters import list_dead, order_status
from vtex_relay.ops.metrics import RedisCollector
from vtex_relay.sandbox import RecordedRequest, SandboxControl
from vtex_relay.settings import get_settings
from vtex_relay.store.keys import DEAD, DELAYED, LEASES, OrderRef, text
from vtex_relay.store.messages import QUEUE

ACCOUNT = "teststore"
# The orders are spread over three accounts sharing the workers: one rate-limited (RATED), and
# every one paused now and then by the sandbox's random 429s.
ACCOUNTS = (ACCOUNT, "chaosrated", "chaosother")
RATED = '{"chaosrated": {"rate": 15, "burst": 3}}'  # VTEX_ACCOUNTS of the workers
SEED_VARIABLE = "CHAOS_SEED"
PRODUCERS = 4
WORKERS = 4
# Faults whose write was applied but whose answer never reached the worker.
ANSWER_LOST = ("apply_drop", "apply_stall")
# Where kombu's Redis transport would copy the messages it takes, were its ack emulation on.
UNACKED = ("unacked", "unacked_index")


def seed_for(test: str) -> int:
    """The run's seed: ``CHAOS_SEED`` if set, else a random one; printed, to replay the run."""
    given = os.environ.get(SEED_VARIABLE)
    seed = int(given) if given else random.SystemRandom().randrange(2**31)
    print(f"\n[{test}] seed {seed} (replay with {SEED_VARIABLE}={seed})")
    return seed


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedJob:
    """One job of an order: ``label`` names it in reports (invoice, tracking-number, PUT1...)."""

    kind: Kind
    label: str
    body: dict[str, Any]

    @property
    def descriptions(self) -> tuple[str, ...]:
        """The event descriptions of a tracking job: they tell its PUTs apart in the log."""
        return tuple(event["description"] for event in self.body.get("events", []))


@dataclass
class PlannedOrder:
    order_id: str
    invoice_number: str
    jobs: list[PlannedJob]
    job_ids: list[str] = field(default_factory=list)  # filled by the one thread enqueuing it
    account: str = ACCOUNT

    @property
    def ref(self) -> OrderRef:
        return OrderRef(self.account, self.order_id)


def plan_orders(
    rng: random.Random, count: int, prefix: str, accounts: Sequence[str] = ACCOUNTS
) -> list[PlannedOrder]:
    """*count* orders, each: invoice, tracking-number, then three PUTs (the last: delivered);
    their accounts taken in turn from *accounts*."""
    orders = []
    for n in range(count):
        order_id = f"{prefix}{n:04d}-01"
        number = f"NF{rng.randrange(10**8):08d}{n:04d}"
        lines = [
            (str(rng.randrange(1, 10**6)), rng.randrange(1, 10**5), rng.randrange(1, 5))
            for _ in range(rng.randrange(1, 4))
        ]
        items = [{"id": sku, "price": price, "quantity": qty} for sku, price, qty in lines]
        value = sum(price * qty for _sku, price, qty in lines)
        invoice = {
            "type": "Output",
            "issuanceDate": f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T10:00:00-03:00",
            "invoiceNumber": number,
            "invoiceValue": str(value),
            "items": items,
        }
        tracking_number: dict[str, Any] = {"trackingNumber": f"TR{rng.randrange(10**10)}"}
        if rng.random() < 0.5:
            tracking_number["courier"] = rng.choice(["Correios", "Loggi", "Jadlog"])
        jobs = [
            PlannedJob("invoice", "invoice", invoice),
            PlannedJob("tracking-number", "tracking-number", tracking_number),
        ]
        jobs += tracking_jobs(rng, 3, order_id)
        orders.append(PlannedOrder(order_id, number, jobs, account=accounts[n % len(accounts)]))
    return orders


def tracking_jobs(rng: random.Random, puts: int, tag: str, label: str = "") -> list[PlannedJob]:
    """*puts* tracking updates, the last one delivered; event descriptions start with *tag*
    (they tell the PUTs apart in the sandbox's log), labels with *label*."""
    jobs = []
    for put in range(1, puts + 1):
        delivered = put == puts
        events = [
            {
                "city": rng.choice(["Rio", "Recife", "Curitiba"]),
                "state": "BR",
                "description": f"{tag} PUT{put} event{e}",
                "date": f"2024-06-2{put}",
            }
            for e in range(rng.randrange(1, 3))
        ]
        body = {
            "isDelivered": delivered,
            "deliveredDate": "2024-06-23 14:30" if delivered else None,
            "events": events,
        }
        jobs.append(PlannedJob("tracking", f"{label}PUT{put}", body))
    return jobs


# The faults every chaos run injects: each kind often enough to happen in a run.
FAULTS: dict[str, Any] = {
    "rate_5xx": 0.05,
    "rate_429": 0.05,
    "retry_after": 0,
    "rate_timeout": 0.04,
    "rate_apply_drop": 0.05,
    "rate_apply_stall": 0.03,
    "stall_seconds": 3,  # above VTEX_TIMEOUT=2: the worker gives up first
}


def enqueue_job(order: PlannedOrder, job: PlannedJob) -> str:
    if job.kind == "invoice":
        return enqueue_invoice(order.order_id, job.body, account=order.account)
    if job.kind == "tracking-number":
        return enqueue_tracking_number(
            order.order_id, order.invoice_number, job.body, account=order.account
        )
    return enqueue_tracking(order.order_id, order.invoice_number, job.body, account=order.account)


def produce(orders: Sequence[PlannedOrder], rng: random.Random) -> None:
    """Enqueue every job from PRODUCERS threads at once.

    Each order belongs to one thread, which enqueues its jobs in order; a thread interleaves
    its orders at random (seeded per thread), and the threads run concurrently.
    """
    shares: list[list[PlannedOrder]] = [[] for _ in range(PRODUCERS)]
    for order in orders:
        shares[rng.randrange(PRODUCERS)].append(order)
    seeds = [rng.randrange(2**32) for _ in shares]

    def run(share: list[PlannedOrder], seed: int) -> None:
        own = random.Random(seed)
        pending = {order.order_id: order for order in share}
        while pending:
            order = pending[own.choice(sorted(pending))]
            order.job_ids.append(enqueue_job(order, order.jobs[len(order.job_ids)]))
            if len(order.job_ids) == len(order.jobs):
                del pending[order.order_id]

    with ThreadPoolExecutor(PRODUCERS, thread_name_prefix="producer") as pool:
        for done in [
            pool.submit(run, share, seed) for share, seed in zip(shares, seeds, strict=True)
        ]:
            done.result()


# --- processes --------------------------------------------------------------------------------


class Fleet:
    """WORKERS worker processes; ``kill_and_replace`` swaps one for a fresh one."""

    def __init__(self, env: dict[str, str], *, concurrency: int = 8) -> None:
        self.env = env
        self.concurrency = concurrency
        self.slots: list[Worker] = []
        self.every: list[Worker] = []  # every worker ever started, for their logs
        self._lock = threading.Lock()

    def start(self) -> "Fleet":
        self.slots = [self._new(f"w{i}") for i in range(WORKERS)]  # stop() covers them all
        start_workers(self.slots, timeout=30)  # side by side, not one by one
        return self

    def _new(self, name: str) -> Worker:
        worker = Worker(self.env, name, concurrency=self.concurrency)
        with self._lock:
            self.every.append(worker)
        return worker

    def kill_and_replace(self, slot: int, generation: int) -> None:
        self.slots[slot].stop(signal.SIGKILL)
        replacement = self._new(f"w{slot}g{generation}")
        self.slots[slot] = replacement
        replacement.start()

    def check_alive(self) -> None:
        for worker in self.slots:
            process = worker.process
            if process is not None and process.poll() is not None:
                raise AssertionError(f"worker {worker.name} exited:\n{worker.log()[-3000:]}")

    def stop(self) -> None:
        stop_all(self.slots)

    def logs(self) -> list[str]:
        with self._lock:
            return [worker.log() for worker in self.every]

    def logs_hint(self) -> str:
        """Where the workers' logs are (a failing run keeps them)."""
        with self._lock:
            return f"\nworker logs: {' '.join(str(w.log_path) for w in self.every)}"

    def discard_logs(self) -> None:
        """Delete the log files (after a passing run; a failing run keeps them to read)."""
        with self._lock:
            for worker in self.every:
                worker.remove_log()


class Chaos(threading.Thread):
    """SIGKILLs a random worker every *gap* seconds (seeded) and starts a replacement."""

    def __init__(self, fleet: Fleet, rng: random.Random, gap: tuple[float, float]) -> None:
        super().__init__(name="chaos", daemon=True)
        self.fleet = fleet
        self.rng = rng
        self.gap = gap
        self.done = threading.Event()
        self.kills = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # Event.wait paces the kills; it is not used to synchronise anything.
            while not self.done.wait(self.rng.uniform(*self.gap)):
                self.kills += 1
                self.fleet.kill_and_replace(self.rng.randrange(WORKERS), self.kills)
        except BaseException as exc:
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the chaos thread failed: {self.error!r}") from self.error

    def finish(self) -> None:
        """Stop killing; wait for a kill under way to end."""
        self.done.set()
        if self.is_alive():
            self.join(timeout=60)


@contextlib.contextmanager
def running(fleet: Fleet, chaos: Chaos | None = None) -> Iterator[None]:
    """Start the fleet (and the chaos); stop all of it, whatever happens."""
    try:
        fleet.start()
        if chaos is not None:
            chaos.start()
        yield
    finally:
        if chaos is not None:
            chaos.finish()
        fleet.stop()


# --- waiting and checking ---------------------------------------------------------------------


def order_states(client: redis.Redis, orders: Sequence[PlannedOrder]) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for order in orders:
        pipe.hget(order.ref.key("order"), "state")
    return [text(state) for state in pipe.execute()]


def all_idle(client: redis.Redis, orders: Sequence[PlannedOrder]) -> bool:
    return all(state == "idle" for state in order_states(client, orders))


def stuck_report(client: redis.Redis, orders: Sequence[PlannedOrder], limit: int = 8) -> str:
    """The orders not idle yet, each with its head job as Redis holds it, and where that job's
    messages are (Celery queue): for a time-out's message.
    """
    queued = [text(m) for m in client.lrange(QUEUE, 0, -1)]
    lines = []
    for order, state in zip(orders, order_states(client, orders), strict=True):
        if state == "idle":
            continue
        status = order_status(client, order.ref)
        for job in [j for j in status.jobs if j.state != "done"][:1]:
            raw = client.hgetall(order.ref.job_key(job.job_id))
            fields = {text(k): text(v) for k, v in raw.items()}
            lines.append(
                f"  {order.order_id}: order {state} head={status.head}; {job.kind} job "
                f"{job.job_id} {fields} attempts={[a.outcome for a in job.attempts]} "
                f"messages in the queue: {sum(job.job_id in m for m in queued)}"
            )
        if len(lines) == limit:
            break
    stuck = sum(state != "idle" for state in order_states(client, orders))
    return f"all orders idle; {stuck} are not, e.g.:\n" + "\n".join(lines)


def drained(client: redis.Redis) -> bool:
    pipe = client.pipeline(transaction=False)
    pipe.llen(QUEUE)
    pipe.zcard(DELAYED)
    pipe.zcount(LEASES, "-inf", "(+inf")  # less the sweep's PIN (keys.py)
    pipe.hlen(DEAD)
    pipe.hlen(UNACKED[0])
    pipe.zcard(UNACKED[1])
    return not any(pipe.execute())


def leftovers(client: redis.Redis) -> str:
    sizes = {
        QUEUE: client.llen(QUEUE),
        DELAYED: client.zcard(DELAYED),
        LEASES: client.zcount(LEASES, "-inf", "(+inf"),
        DEAD: client.hlen(DEAD),
        UNACKED[0]: client.hlen(UNACKED[0]),
        UNACKED[1]: client.zcard(UNACKED[1]),
    }
    return f"the queues to drain, still {sizes}"


def job_of(order: PlannedOrder, request: RecordedRequest) -> int | None:
    """The index of the job that sent *request* (a write), or None if none of them did."""
    if request.method == "POST":
        return 0
    if request.method == "PATCH":
        return 1
    if request.method == "PUT" and isinstance(request.body, dict):
        seen = tuple(e.get("description") for e in request.body.get("events", []))
        for index, job in enumerate(order.jobs):
            if job.kind == "tracking" and job.descriptions == seen:
                return index
    return None


@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)
    duplicate_puts: int = 0  # tolerated: a PUT re-applied after its answer was lost


def check_order(
    order: PlannedOrder,
    requests: Sequence[RecordedRequest],
    invoice_posts: dict[str, int],
    findings: Findings,
) -> None:
    """Check one order's request log against the rules in the module docstring."""
    name = order.order_id

    def violation(message: str) -> None:
        findings.violations.append(f"{name}: {message}")

    writes: list[tuple[int, RecordedRequest]] = []
    for request in requests:
        if request.method == "GET":
            continue
        index = job_of(order, request)
        if index is None:
            violation(f"request #{request.seq} {request.method} {request.path} is no job's")
        else:
            writes.append((index, request))

    # Applied writes, in the order they were applied; a tolerated duplicate is folded in.
    applied = sorted(
        ((i, r) for i, r in writes if r.applied_at is not None),
        key=lambda ir: (ir[1].applied_at, ir[1].seq),
    )
    sequence: list[tuple[int, RecordedRequest]] = []
    folded = False
    for index, request in applied:
        if sequence and not folded:
            last_index, last = sequence[-1]
            if (
                last_index == index
                and order.jobs[index].kind == "tracking"
                and last.fault in ANSWER_LOST
            ):
                findings.duplicate_puts += 1
                folded = True  # at most one such duplicate per PUT: a third one is kept
                continue
        folded = False
        sequence.append((index, request))
    labels = [order.jobs[i].label for i, _ in sequence]
    wanted = [job.label for job in order.jobs]
    if labels != wanted:
        detail = [
            f"{order.jobs[i].label}#{r.seq}({r.fault or r.status})"
            for i, r in applied  # unfolded, to show what happened
        ]
        violation(f"applied writes {detail}, expected {wanted}")

    if invoice_posts != {order.invoice_number: 1}:
        violation(f"invoicePosts {invoice_posts}, expected {{{order.invoice_number!r}: 1}}")

    # Ordering: job k+1 sends nothing before job k was applied and sent its last request.
    for k in range(len(order.jobs) - 1):
        mine = [r for i, r in writes if i == k]
        first_applied = min((r.applied_at for r in mine if r.applied_at is not None), default=None)
        last_received = max((r.received_at for r in mine), default=None)
        for index, request in writes:
            if index != k + 1:
                continue
            label = f"{order.jobs[k + 1].label} #{request.seq}"
            if first_applied is None or request.received_at < first_applied:
                violation(f"{label} received before {order.jobs[k].label} was applied")
            elif last_received is not None and request.received_at < last_received:
                violation(f"{label} received while {order.jobs[k].label} was still sending")


def check_redis(client: redis.Redis, order: PlannedOrder, findings: Findings) -> Counter[str]:
    """Every job done and the order idle; returns the order's attempts by outcome.

    ``killed`` counts the tries (claims) that never recorded an outcome: their worker died.
    """
    status = order_status(client, order.ref)
    if (status.state, status.head) != ("idle", 0):
        findings.violations.append(f"{order.order_id}: order {status.state} head {status.head}")
    ids = [job.job_id for job in status.jobs]
    if ids != order.job_ids:
        findings.violations.append(f"{order.order_id}: jobs {ids}, enqueued {order.job_ids}")
    outcomes: Counter[str] = Counter()
    for job in status.jobs:
        if job.state != "done":
            findings.violations.append(f"{order.order_id}: {job.kind} job {job.job_id} {job.state}")
        outcomes.update(attempt.outcome for attempt in job.attempts)
        # A claim whose worker died before recording an outcome: a try cut by a kill.
        outcomes["killed"] += max(0, job.tries - len(job.attempts))
    return outcomes


def check_orders(
    sandbox: SandboxControl,
    client: redis.Redis,
    orders: Sequence[PlannedOrder],
    requests: Sequence[RecordedRequest],
) -> tuple[Findings, Counter[str]]:
    """Check every order's *requests* (``check_order``) and records (``check_redis``); return
    the findings and the orders' attempts by outcome."""
    by_order: dict[str | None, list[RecordedRequest]] = {}
    for request in requests:
        by_order.setdefault(request.order_id, []).append(request)
    findings = Findings()
    outcomes: Counter[str] = Counter()
    for order in orders:
        posts: dict[str, int] = sandbox.order(order.order_id, order.account)["invoicePosts"]
        check_order(order, by_order.get(order.order_id, []), posts, findings)
        outcomes += check_redis(client, order, findings)
    return findings, outcomes


# --- the metrics ------------------------------------------------------------------------------

RESULT_OF_FAULT = {
    "429": "429",
    "5xx": "5xx",
    "timeout": "timeout",
    **dict.fromkeys(ANSWER_LOST, "timeout"),
}


def check_metrics(
    client: redis.Redis,
    orders: Sequence[PlannedOrder],
    requests: Sequence[RecordedRequest],
    *,
    exact_tries: bool,
) -> list[str]:
    """The metrics after a drained run, against what else shows the same: ``vtex-relay
    accounts`` and ``dlq list`` (same Redis), the plan (every job enqueued and delivered once)
    and, with *exact_tries* (no worker killed, so every try was recorded), the sandbox: each
    failed request ended one try, whose result is that request's."""
    settings = get_settings()
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in RedisCollector(client, settings).collect():
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(name: str, **labels: str) -> float:
        return found.get((name, frozenset(labels.items())), 0.0)

    problems = []
    dead = Counter(record.account for record in list_dead(client))
    for status in account_statuses(client, settings):
        for state in ("waiting", "ready", "running", "retrying", "throttled", "dead"):
            shown = value("vtex_relay_jobs", account=status.account, state=state)
            if shown != getattr(status, state):
                problems.append(f"{status.account} {state}: metrics {shown}, accounts view")
        if value("vtex_relay_held_orders", account=status.account) != dead[status.account]:
            problems.append(f"{status.account}: held orders differ from dlq list")
    planned = Counter((o.account, job.kind) for o in orders for job in o.jobs)
    for (account, kind), count in planned.items():
        for name, extra in (
            ("vtex_relay_jobs_enqueued_total", {}),
            ("vtex_relay_jobs_finished_total", {"outcome": "delivered"}),
        ):
            got = value(name, account=account, kind=kind, **extra)
            if got != count:
                problems.append(f"{name} {account} {kind}: {got}, planned {count}")
    if exact_tries:
        failed = Counter(
            (r.account, RESULT_OF_FAULT[r.fault]) for r in requests if r.fault in RESULT_OF_FAULT
        )
        for account in ACCOUNTS:
            for result in ("429", "5xx", "timeout"):
                got = sum(
                    value("vtex_relay_tries_total", account=account, kind=kind, result=result)
                    for kind in ("invoice", "tracking-number", "tracking")
                )
                if got != failed[account, result]:
                    problems.append(
                        f"tries {account} {result}: {got}, the sandbox answered "
                        f"{failed[account, result]}"
                    )
    return problems
