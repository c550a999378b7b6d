"""A split shipment under ``partial``, with the order-total check on, while workers are killed.

Real Redis, real worker processes, the sandbox over HTTP (issue 12, "Tests that must exist").
Every order has a total of 10,000 cents in the sandbox and is invoiced in two packages,
6,000 + 4,000, each with its own invoice number, tracking number and tracking events::

    invoice NF…a (6000), tracking-number NF…a, PUT(s) NF…a (the last: delivered),
    invoice NF…b (4000), tracking-number NF…b, PUT(s) NF…b (the last: delivered)

Several producer threads enqueue them interleaved (each order belongs to one thread), the
account "teststore" under ``partial`` on both sides, the workers with ``VERIFY_ORDER_TOTAL=true``
(so each invoice try reads the order first: the check and the reconciliation in one GET).
Meanwhile workers are SIGKILLed and replaced (``tests.chaos.Chaos``) and the sandbox answers
429 (Retry-After 0), 5xx, time-outs, and applies writes whose answers it then drops or stalls.

Checked, for every order:

- each invoice's chain (invoice, tracking-number, PUTs) by ``tests.chaos.check_order`` as it
  is: applied once each, in enqueue order, each invoice number POSTed exactly once (the only
  tolerated extra is a PUT applied again after its first application's answer was lost);
- across the two chains: no write of NF…b is received before NF…a's last PUT was applied and
  its last request received;
- ``invoicePosts == {NF…a: 1, NF…b: 1}`` and nothing else; the order ``invoiced`` in the
  sandbox, each package with its value, tracking number and delivered events;
- the check was on: the order's request just before each POST is a GET order (that try's);
- Redis (``tests.chaos.check_redis``): every job done, the order idle; nothing dead (a dead job
  fails the run at once, with its reason), no total-check refusal in the logs, no traceback;
  once over, every queue drained.

The seed is printed and ``CHAOS_SEED`` replays the plan, the interleaving and the kill
schedule (the sandbox's faults come from its own RNG, and thread timing differs).
"""

import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
import redis

from tests.chaos import (
    ACCOUNT,
    ANSWER_LOST,
    FAULTS,
    PRODUCERS,
    Chaos,
    Findings,
    Fleet,
    PlannedJob,
    PlannedOrder,
    all_idle,
    check_order,
    check_redis,
    drained,
    leftovers,
    running,
    seed_for,
    stuck_report,
    tracking_jobs,
)
from tests.processes import wait_for
from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.ops.dead_letters import list_dead, order_status
from vtex_relay.sandbox import RecordedRequest, SandboxControl
from vtex_relay.store.keys import DEAD

TEST = "split"
ORDERS = 80
TOTAL = 10_000
SPLIT = (6_000, 4_000)  # the two packages' invoice values, in enqueue order
ACCOUNTS = f'{{"{ACCOUNT}": {{"invoicePolicy": "partial"}}}}'
KILL_GAP = (1.0, 3.0)  # seconds between two SIGKILLs
LATENCY_MS = 30.0  # before each write is applied: more calls in flight at a kill
DEADLINE = 75.0  # for every order to be idle

FAULT_KINDS = ("429", "5xx", "timeout", *ANSWER_LOST)
RECONCILED_LOG = "already at VTEX"
REFUSED_LOG = "it would leave the order wrong"  # the total check dead-lettering an invoice
RECOVERED_LOG = re.compile(r"(\d+) jobs recovered from expired leases")


# --- the plan ---------------------------------------------------------------------------------


@dataclass
class SplitOrder:
    """One order: ``whole`` has every job in enqueue order (its ``job_ids`` filled by the thread
    enqueuing it), ``numbers`` each job's invoice number; ``chains`` one ``PlannedOrder`` per
    invoice (its invoice, tracking-number and PUTs), for ``tests.chaos.check_order``."""

    whole: PlannedOrder
    numbers: list[str]
    chains: list[PlannedOrder] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return self.whole.order_id


def plan_split_orders(rng: random.Random, count: int, prefix: str) -> list[SplitOrder]:
    """*count* orders of TOTAL cents, each invoiced in two packages (SPLIT), each package with
    its tracking number and one to three PUTs (the last one delivered)."""
    orders = []
    for n in range(count):
        order_id = f"{prefix}{n:04d}-01"
        serial = rng.randrange(10**8)
        jobs: list[PlannedJob] = []
        numbers: list[str] = []
        chains = []
        for part, value in zip("ab", SPLIT, strict=True):
            number = f"NF{serial:08d}{n:04d}{part}"  # unique across the run
            chain = plan_chain(rng, order_id, number, part, value)
            chains.append(PlannedOrder(order_id, number, chain))
            jobs += chain
            numbers += [number] * len(chain)
        orders.append(SplitOrder(PlannedOrder(order_id, numbers[0], jobs), numbers, chains))
    return orders


def plan_chain(
    rng: random.Random, order_id: str, number: str, part: str, value: int
) -> list[PlannedJob]:
    """One package's jobs: its invoice of *value*, its tracking number, then its PUTs."""
    cut = rng.randrange(1, value)  # two lines adding up to the invoice's value
    prices = [cut, value - cut] if rng.random() < 0.5 else [value]
    invoice = {
        "type": "Output",
        "issuanceDate": f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T10:00:00-03:00",
        "invoiceNumber": number,
        "invoiceValue": str(value),
        "items": [
            {"id": str(rng.randrange(1, 10**6)), "price": price, "quantity": 1} for price in prices
        ],
    }
    tracking_number: dict[str, Any] = {"trackingNumber": f"TR{rng.randrange(10**10)}{part}"}
    if rng.random() < 0.5:
        tracking_number["courier"] = rng.choice(["Correios", "Loggi", "Jadlog"])
    jobs = [
        PlannedJob("invoice", f"{part}:invoice", invoice),
        PlannedJob("tracking-number", f"{part}:tracking-number", tracking_number),
    ]
    return jobs + tracking_jobs(rng, rng.randrange(1, 4), f"{order_id} {number}", f"{part}:")


def enqueue_split_job(order: SplitOrder, index: int) -> str:
    job, number = order.whole.jobs[index], order.numbers[index]
    if job.kind == "invoice":
        return enqueue_invoice(order.order_id, job.body, account=ACCOUNT)
    if job.kind == "tracking-number":
        return enqueue_tracking_number(order.order_id, number, job.body, account=ACCOUNT)
    return enqueue_tracking(order.order_id, number, job.body, account=ACCOUNT)


def produce_split(orders: Sequence[SplitOrder], rng: random.Random) -> None:
    """``tests.chaos.produce`` for split orders: PRODUCERS threads at once, each order owned by
    one thread, which enqueues its jobs in order and interleaves its orders at random."""
    shares: list[list[SplitOrder]] = [[] for _ in range(PRODUCERS)]
    for order in orders:
        shares[rng.randrange(PRODUCERS)].append(order)
    seeds = [rng.randrange(2**32) for _ in shares]

    def run(share: list[SplitOrder], seed: int) -> None:
        own = random.Random(seed)
        pending = {order.order_id: order for order in share}
        while pending:
            order = pending[own.choice(sorted(pending))]
            ids = order.whole.job_ids
            ids.append(enqueue_split_job(order, len(ids)))
            if len(ids) == len(order.whole.jobs):
                del pending[order.order_id]

    with ThreadPoolExecutor(PRODUCERS, thread_name_prefix="producer") as pool:
        for done in [
            pool.submit(run, share, seed) for share, seed in zip(shares, seeds, strict=True)
        ]:
            done.result()


# --- checks -----------------------------------------------------------------------------------


def check_split_order(
    order: SplitOrder,
    requests: Sequence[RecordedRequest],
    shown: dict[str, Any],
    findings: Findings,
) -> None:
    """Each chain by ``check_order``; the boundary between the chains; what the sandbox shows."""
    name = order.order_id
    posts: dict[str, int] = shown["invoicePosts"]
    numbers = [chain.invoice_number for chain in order.chains]
    writes = [r for r in requests if r.method != "GET"]
    for request in writes:
        if request.invoice_number not in numbers:
            findings.violations.append(
                f"{name}: request #{request.seq} {request.method} {request.path} "
                f"names invoice {request.invoice_number!r}, not one of {numbers}"
            )
    for chain in order.chains:
        number = chain.invoice_number
        mine = [r for r in requests if r.invoice_number == number]
        check_order(chain, mine, {k: v for k, v in posts.items() if k == number}, findings)
    if posts != dict.fromkeys(numbers, 1):
        findings.violations.append(f"{name}: invoicePosts {posts}, expected each of {numbers} once")

    # The chains in enqueue order: nothing of the next invoice before the last PUT of the one
    # before it was applied and had sent its last request.
    for before, after in pairwise(order.chains):
        last = before.jobs[-1]
        last_writes = [
            r
            for r in writes
            if r.invoice_number == before.invoice_number
            and r.method == "PUT"
            and isinstance(r.body, dict)
            and tuple(e.get("description") for e in r.body.get("events", [])) == last.descriptions
        ]
        first_applied = min(
            (r.applied_at for r in last_writes if r.applied_at is not None), default=None
        )
        last_received = max((r.received_at for r in last_writes), default=None)
        for request in writes:
            if request.invoice_number != after.invoice_number:
                continue
            label = f"{after.invoice_number} {request.method} #{request.seq}"
            if first_applied is None or request.received_at < first_applied:
                findings.violations.append(f"{name}: {label} received before {last.label} applied")
            elif last_received is not None and request.received_at < last_received:
                findings.violations.append(f"{name}: {label} received while {last.label} sent")

    # The total check was on: every POST's try read the order first, so the order's request
    # just before each POST is that try's GET (one job of an order at a time).
    ordered = sorted(requests, key=lambda r: (r.received_at, r.seq))
    for previous, request in pairwise(ordered):
        if request.method == "POST" and previous.method != "GET":
            findings.violations.append(
                f"{name}: POST #{request.seq} of {request.invoice_number} not after a GET order "
                f"(after {previous.method} #{previous.seq})"
            )
    if ordered and ordered[0].method == "POST":
        findings.violations.append(f"{name}: POST #{ordered[0].seq} with no GET order before it")

    vtex = shown["order"]
    if vtex["status"] != "invoiced":
        findings.violations.append(f"{name}: status {vtex['status']!r}, expected 'invoiced'")
    packages = {p["invoiceNumber"]: p for p in vtex["packageAttachment"]["packages"]}
    for chain in order.chains:
        package = packages.get(chain.invoice_number)
        invoice, tracking_number = chain.jobs[0].body, chain.jobs[1].body
        if package is None:
            continue  # reported above (invoicePosts)
        finished = (package.get("courierStatus") or {}).get("finished")
        if (
            package["invoiceValue"] != int(invoice["invoiceValue"])
            or package["trackingNumber"] != tracking_number["trackingNumber"]
            or finished is not True
        ):
            findings.violations.append(
                f"{name}: package {chain.invoice_number} shows value {package['invoiceValue']}, "
                f"tracking number {package['trackingNumber']}, finished {finished}"
            )


def fail_on_dead(client: redis.Redis) -> None:
    """A dead job holds its order for good: fail at once, with each dead job's reason."""
    if client.hlen(DEAD):
        dead = [
            f"{job.order_id} {job.kind} {job.invoice_number} ({job.job_id}) after {job.tries} "
            f"tries: {job.last_error_line}"
            for job in list_dead(client)
        ]
        raise AssertionError(f"{len(dead)} job(s) dead-lettered: {dead[:10]}")


# --- the test ---------------------------------------------------------------------------------


def test_split_shipments_while_workers_are_killed(
    sandbox: SandboxControl, redis_client: redis.Redis, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("VTEX_ACCOUNTS", ACCOUNTS)  # the producers: partial for "teststore"
    seed = seed_for(TEST)
    rng = random.Random(seed)
    orders = plan_split_orders(rng, ORDERS, prefix=f"{TEST[:4]}{seed % 10000:04d}x")
    wholes = [order.whole for order in orders]
    for order in orders:
        sandbox.seed_order(order.order_id, value=TOTAL, account=ACCOUNT)
    kills_rng = random.Random(rng.randrange(2**32))

    started = time.monotonic()
    sandbox.set_faults(**FAULTS, latency_ms=LATENCY_MS)
    env = {
        **os.environ,
        "VERIFY_ORDER_TOTAL": "true",
        "VTEX_ACCOUNTS": ACCOUNTS,
        "RETRY_MAX_ATTEMPTS": "30",
    }
    fleet = Fleet(env)
    chaos = Chaos(fleet, kills_rng, KILL_GAP)

    def progress() -> bool:
        chaos.check()
        fail_on_dead(redis_client)
        return all_idle(redis_client, wholes)

    try:
        with running(fleet, chaos):
            produce_split(orders, rng)
            wait_for(
                progress,
                timeout=DEADLINE,
                interval=0.1,
                what=lambda: stuck_report(redis_client, wholes) + fleet.logs_hint(),
            )
            chaos.finish()
            chaos.check()
            wait_for(
                lambda: drained(redis_client),
                timeout=40,
                interval=0.1,
                what=lambda: leftovers(redis_client) + fleet.logs_hint(),
            )
            logs = fleet.logs()
    finally:
        sandbox.set_faults(
            rate_5xx=0,
            rate_429=0,
            rate_timeout=0,
            rate_apply_drop=0,
            rate_apply_stall=0,
            latency_ms=0,
        )
    seconds = time.monotonic() - started

    requests = sandbox.requests()
    by_order: dict[str | None, list[RecordedRequest]] = {}
    for request in requests:
        by_order.setdefault(request.order_id, []).append(request)
    findings = Findings()
    outcomes: Counter[str] = Counter()
    invoice_reconciled = 0
    for order in orders:
        shown = sandbox.order(order.order_id, ACCOUNT)
        check_split_order(order, by_order.get(order.order_id, []), shown, findings)
        outcomes += check_redis(redis_client, order.whole, findings)
        status = order_status(redis_client, order.whole.ref)
        invoice_reconciled += sum(
            attempt.outcome == "reconciled"
            for job in status.jobs
            if job.kind == "invoice"
            for attempt in job.attempts
        )
    strangers = set(by_order) - {order.order_id for order in orders}
    if strangers:
        findings.violations.append(
            f"requests for orders never enqueued: {sorted(map(str, strangers))}"
        )
    tracebacks = sum(log.count("Traceback") for log in logs)
    if tracebacks:
        findings.violations.append(f"{tracebacks} traceback(s) in the worker logs")
    refused = sum(log.count(REFUSED_LOG) for log in logs)
    if refused:
        findings.violations.append(f"{refused} invoice(s) refused by the order-total check")

    faults = Counter(r.fault for r in requests if r.fault is not None)
    reconciled = sum(log.count(RECONCILED_LOG) for log in logs)
    recoveries = sum(int(n) for log in logs for n in RECOVERED_LOG.findall(log))
    gets = sum(r.method == "GET" for r in requests)
    posts = sum(r.method == "POST" for r in requests)
    violations = findings.violations
    print(
        f"[{TEST}] seed={seed} orders={len(orders)} "
        f"invoices={sum(len(o.chains) for o in orders)} "
        f"jobs={sum(len(o.whole.job_ids) for o in orders)} requests={len(requests)} "
        f"(GET={gets}, POST={posts}) "
        f"faults={{{', '.join(f'{k}: {faults[k]}' for k in FAULT_KINDS)}}} "
        f"kills={chaos.kills} tries-cut-by-kills={outcomes['killed']} "
        f"lease-recoveries={recoveries} retries={outcomes['retryable']} "
        f"reconciliations={reconciled} (attempts: {outcomes['reconciled']}, "
        f"of invoices: {invoice_reconciled}) "
        f"duplicate-PUTs-tolerated={findings.duplicate_puts} total-check-refusals={refused} "
        f"violations={len(violations)} wall={seconds:.1f}s"
    )
    for line in violations[:30]:
        print(f"[{TEST}] VIOLATION {line}")
    if violations:
        print(f"[{TEST}]{fleet.logs_hint()}")
    assert not violations, f"seed {seed}: {len(violations)} violation(s), first: {violations[:10]}"
    # The run proved something only if workers were killed, every kind of fault happened, and
    # tries whose outcome was unknown were reconciled, not sent again.
    assert chaos.kills, f"seed {seed}: no worker was killed"
    assert all(faults[kind] for kind in FAULT_KINDS), f"seed {seed}: faults {dict(faults)}"
    assert reconciled, f"seed {seed}: no reconciliation happened"
    assert outcomes["killed"] or recoveries, f"seed {seed}: no kill cut a try"
    fleet.discard_logs()
