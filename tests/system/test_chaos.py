"""Randomised end-to-end tests: many orders, a misbehaving VTEX, and workers that get killed.

Real Redis, real worker processes, the sandbox over HTTP. A seeded ``random.Random`` plans the
orders and paces the chaos; the seed is printed and ``CHAOS_SEED`` replays it. The sandbox
draws its faults from its own RNG and thread timing differs between runs, so a seed replays the
plan and the chaos schedule, not every single fault.

The expected end state is "every job delivered": workers get ``RETRY_MAX_ATTEMPTS`` high
enough that random faults never kill a job. What is checked, for every order, from the
sandbox's request log and from Redis, is listed in ``tests/chaos.py``; besides, no request is
for an order never enqueued, no worker log holds a traceback, and the run proved something:
every kind of fault happened, a reconciliation too, and a worker was killed where asked.

A run that does not finish fails with the stuck orders' head jobs as Redis holds them and
whether their messages are in the queue.
"""

import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from tests.chaos import (
    ACCOUNTS,
    ANSWER_LOST,
    FAULTS,
    RATED,
    Chaos,
    Findings,
    Fleet,
    PlannedOrder,
    all_idle,
    check_metrics,
    check_orders,
    drained,
    leftovers,
    plan_orders,
    produce,
    running,
    seed_for,
    stuck_report,
)
from tests.processes import wait_for
from vtex_relay.sandbox import RecordedRequest, SandboxControl

FAULT_KINDS = ("429", "5xx", "timeout", *ANSWER_LOST)
RECONCILED_LOG = "already at VTEX"
RECOVERED_LOG = re.compile(r"(\d+) jobs recovered from expired leases")


# --- plan, run, check -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a run does: its orders, and the faults and kills it undergoes."""

    test: str
    seed: int
    rng: random.Random  # drawn from after planning: how the producers interleave
    orders: list[PlannedOrder]
    kills: tuple[random.Random, tuple[float, float]] | None  # their RNG and gap; None: no kill
    latency_ms: float
    deadline: float


@dataclass(frozen=True)
class Observed:
    """What a run left: the fleet (its logs), the sandbox's request log, the kills."""

    fleet: Fleet
    logs: list[str]
    requests: list[RecordedRequest]
    kills: int
    seconds: float


@dataclass(frozen=True)
class Verdict:
    findings: Findings
    outcomes: Counter[str]  # attempts by outcome; "killed": tries cut by a kill
    faults: Counter[str]  # the sandbox's injected faults, by kind
    reconciled: int  # reconciliations the workers logged


def plan_run(
    test: str,
    orders: int,
    kill_gap: tuple[float, float] | None,
    latency_ms: float,
    deadline: float,
) -> Plan:
    seed = seed_for(test)
    rng = random.Random(seed)
    planned = plan_orders(rng, orders, prefix=f"{test[:4]}{seed % 10000:04d}x")
    kills = (random.Random(rng.randrange(2**32)), kill_gap) if kill_gap else None
    return Plan(test, seed, rng, planned, kills, latency_ms, deadline)


def run_chaos(plan: Plan, sandbox: SandboxControl, client: redis.Redis) -> Observed:
    """Enqueue the plan's orders into a fleet of workers, VTEX failing at random (and workers
    killed, if planned) until every order is idle and every queue drained."""
    started = time.monotonic()
    # The latency is applied before the write: more calls in flight at a kill.
    sandbox.set_faults(**FAULTS, latency_ms=plan.latency_ms)
    fleet = Fleet({**os.environ, "RETRY_MAX_ATTEMPTS": "30", "VTEX_ACCOUNTS": RATED})
    chaos = Chaos(fleet, *plan.kills) if plan.kills else None

    def progress() -> bool:
        if chaos is None:
            fleet.check_alive()  # nobody kills workers here: a dead one is a failure
        else:
            chaos.check()
        return all_idle(client, plan.orders)

    with running(fleet, chaos):
        produce(plan.orders, plan.rng)
        wait_for(
            progress,
            timeout=plan.deadline,
            interval=0.1,
            what=lambda: stuck_report(client, plan.orders) + fleet.logs_hint(),
        )
        if chaos is not None:
            chaos.finish()
            chaos.check()
        # A lost message's replacement may still be queued behind its job's end; it is dropped
        # at its claim: wait for that before calling the queues empty.
        wait_for(
            lambda: drained(client),
            timeout=40,
            interval=0.1,
            what=lambda: leftovers(client) + fleet.logs_hint(),
        )
        logs = fleet.logs()
    seconds = time.monotonic() - started
    sandbox.set_faults(
        rate_5xx=0, rate_429=0, rate_timeout=0, rate_apply_drop=0, rate_apply_stall=0, latency_ms=0
    )
    return Observed(fleet, logs, sandbox.requests(), chaos.kills if chaos else 0, seconds)


def check_run(
    plan: Plan, observed: Observed, sandbox: SandboxControl, client: redis.Redis
) -> Verdict:
    findings, outcomes = check_orders(sandbox, client, plan.orders, observed.requests)
    strangers = {r.order_id for r in observed.requests} - {o.order_id for o in plan.orders}
    if strangers:
        findings.violations.append(
            f"requests for orders never enqueued: {sorted(map(str, strangers))}"
        )
    # The metrics agree with the operator's commands, the plan and (no kills) the sandbox.
    findings.violations += check_metrics(
        client, plan.orders, observed.requests, exact_tries=plan.kills is None
    )
    tracebacks = sum(log.count("Traceback") for log in observed.logs)
    if tracebacks:
        findings.violations.append(f"{tracebacks} traceback(s) in the worker logs")
    faults = Counter(r.fault for r in observed.requests if r.fault is not None)
    reconciled = sum(log.count(RECONCILED_LOG) for log in observed.logs)
    return Verdict(findings, outcomes, faults, reconciled)


def report(plan: Plan, observed: Observed, verdict: Verdict) -> None:
    """One line of figures; the first violations, and where the logs are if there are any."""
    test, requests, outcomes = plan.test, observed.requests, verdict.outcomes
    violations = verdict.findings.violations
    print(
        f"[{test}] seed={plan.seed} orders={len(plan.orders)} "
        f"jobs={sum(len(o.job_ids) for o in plan.orders)} requests={len(requests)} "
        f"(GET={sum(r.method == 'GET' for r in requests)}) "
        f"faults={{{', '.join(f'{k}: {verdict.faults[k]}' for k in FAULT_KINDS)}}} "
        f"kills={observed.kills} tries-cut-by-kills={outcomes['killed']} "
        f"lease-recoveries={recovered(observed.logs)} retries={outcomes['retryable']} "
        f"reconciliations={verdict.reconciled} (attempts: {outcomes['reconciled']}) "
        f"duplicate-PUTs-tolerated={verdict.findings.duplicate_puts} "
        f"violations={len(violations)} wall={observed.seconds:.1f}s"
    )
    for line in violations[:30]:
        print(f"[{test}] VIOLATION {line}")
    if violations:
        print(f"[{test}]{observed.fleet.logs_hint()}")


def recovered(logs: Sequence[str]) -> int:
    """How many jobs the sweeps re-dispatched after their lease ran out (from the logs)."""
    return sum(int(n) for log in logs for n in RECOVERED_LOG.findall(log))


def scenario(
    *,
    test: str,
    sandbox: SandboxControl,
    client: redis.Redis,
    orders_count: int,
    kill_gap: tuple[float, float] | None,
    latency_ms: float = 0.0,
    deadline: float,
) -> None:
    plan = plan_run(test, orders_count, kill_gap, latency_ms, deadline)
    observed = run_chaos(plan, sandbox, client)
    verdict = check_run(plan, observed, sandbox, client)
    report(plan, observed, verdict)
    seed, violations = plan.seed, verdict.findings.violations
    assert not violations, f"seed {seed}: {len(violations)} violation(s), first: {violations[:10]}"
    # The run proved something only if every kind of fault happened.
    assert all(verdict.faults[kind] for kind in FAULT_KINDS), (
        f"seed {seed}: faults {dict(verdict.faults)}"
    )
    assert verdict.reconciled, f"seed {seed}: no reconciliation happened"
    # Every account was paused by a 429 at least once, and the rate-limited one kept its rate
    # whatever the others did (+1: a second's edge can hold one more slot).
    paused = {r.account for r in observed.requests if r.fault == "429"}
    assert paused == set(ACCOUNTS), f"seed {seed}: 429s for {paused} only"
    per_second = Counter(int(r.received_at) for r in observed.requests if r.account == "chaosrated")
    assert max(per_second.values()) <= 15 + 3 + 1, f"seed {seed}: {sorted(per_second.values())}"
    assert plan.kills is None or observed.kills, f"seed {seed}: no worker was killed"
    observed.fleet.discard_logs()


def test_randomised_orders_with_faults(sandbox: SandboxControl, redis_client: redis.Redis) -> None:
    scenario(
        test="faults",
        sandbox=sandbox,
        client=redis_client,
        orders_count=200,
        kill_gap=None,
        deadline=120,
    )


def test_randomised_orders_while_workers_are_killed(
    sandbox: SandboxControl, redis_client: redis.Redis
) -> None:
    scenario(
        test="kills",
        sandbox=sandbox,
        client=redis_client,
        orders_count=200,
        kill_gap=(1.0, 3.0),
        latency_ms=30,
        deadline=150,
    )
