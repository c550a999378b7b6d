"""``python -m bench.noisy_neighbour [--quick]``: a quiet account's latency behind a backlog.

Issue 13's scenario. Account A (rate limit 100/s, burst 10, in ``VTEX_ACCOUNTS``) has a
backlog of 50,000 invoice jobs; account B enqueues one order's five jobs (invoice, tracking
number, three tracking updates) every 100 ms for 30 s, open loop. Sandbox latency 100 ms; 2
workers, threads 64 (the Procfile). B's enqueue -> delivered latency per job, where delivered
is the sandbox *receiving* the call (its request log's ``received_at``; same machine clock as
the producer's ``time.time()`` taken just before the enqueue call), is measured with B alone
and with A's backlog, for vtex-relay and for plain Celery (FIFO, no rate limit: Celery's
``rate_limit`` is per task type and worker, not per account, so it would throttle B as well).
Writes ``bench/noisy-neighbour.md`` (``--quick``: ``bench/noisy-neighbour-quick.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context, Plan, info
from bench.harness import BenchError, stop_workers
from bench.report import machine_line
from bench.systems import RELAY_PROCFILE, System
from bench.workload import invoice_body
from tests.harness import start_workers

A, B = "noisya", "quietb"
A_RATE, A_BURST = 100, 10
LATENCY_MS = 100.0
TICK = 0.1  # B enqueues one order every TICK seconds
PLAIN = System("plain", 2, "threads", 64)  # the same pool as vtex-relay's, for a like test
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRACKING_NUMBER: dict[str, Any] = json.loads((EXAMPLES / "tracking-number.json").read_text())
TRACKING: dict[str, Any] = json.loads((EXAMPLES / "tracking.json").read_text())


@dataclass(frozen=True)
class Outcome:
    system: System
    backlog: int
    latencies_ms: list[float]  # per B job, sorted; an undelivered one counts as the cap
    missing: int  # B jobs not delivered by the cap
    a_in_window: int  # A's calls received while B was enqueueing
    window: float
    parks: tuple[int, int] | None  # A's jobs dispatched, claims parked (vtex-relay only)
    lag_ms: float  # how far B's producer fell behind its schedule, at most

    def pct(self, q: float) -> float:
        lat = self.latencies_ms
        return lat[min(len(lat) - 1, int(len(lat) * q))]


def _tracking(step: int) -> dict[str, Any]:
    # Three distinct updates (an identical body would be the same job, deduplicated).
    return {**TRACKING, "events": TRACKING["events"][: 1 + step % 2], "isDelivered": step == 2}


def _relay_order(oid: str, tick: int) -> list[Any]:
    from vtex_relay.produce.api import build_job

    number = f"NF-{tick}"
    return [
        build_job("invoice", oid, invoice_body(tick), account=B),
        build_job("tracking-number", oid, TRACKING_NUMBER, invoice_number=number, account=B),
        *(
            build_job("tracking", oid, _tracking(s), invoice_number=number, account=B)
            for s in range(3)
        ),
    ]


def _enqueue_a(system: System, prefix: str, count: int) -> list[tuple[str, str]]:
    """A's backlog, the fast way for each system; vtex-relay's (order, job id) pairs."""
    if system.kind == "plain":
        from bench.plain_celery import post_invoice

        for i in range(count):
            oid = f"{prefix}A-{i:07d}-01"
            post_invoice.apply_async(
                kwargs={"account": A, "order_id": oid, "body": invoice_body(i)}
            )
        return []
    from vtex_relay.produce.api import build_job, enqueue_many

    oids = [f"{prefix}A-{i:07d}-01" for i in range(count)]
    results = enqueue_many(
        build_job("invoice", o, invoice_body(i), account=A) for i, o in enumerate(oids)
    )
    if sum(r.verdict == "enqueued" for r in results) != count:
        raise BenchError(f"A: {[r.verdict for r in results if r.verdict != 'enqueued'][:3]}")
    return [(o, r.job_id) for o, r in zip(oids, results, strict=True)]


def _produce_b(system: System, prefix: str, seconds: float) -> tuple[dict[str, float], float]:
    """B's open-loop producer: {order id: enqueue time} and its worst lag behind schedule."""
    from bench.plain_celery import post_invoice
    from vtex_relay.produce.api import enqueue_many

    sent: dict[str, float] = {}
    lag = 0.0
    started = time.time()
    for tick in range(int(seconds / TICK)):
        due = started + tick * TICK
        if (pause := due - time.time()) > 0:
            time.sleep(pause)
        lag = max(lag, time.time() - due)
        if system.kind == "relay":
            oid = f"{prefix}B-{tick:05d}-01"
            jobs = _relay_order(oid, tick)
            sent[oid] = time.time()
            if any(r.verdict != "enqueued" for r in enqueue_many(jobs)):
                raise BenchError(f"B's order {oid} was not enqueued whole")
            continue
        # Plain Celery has one task, the invoice POST, and no per-order ordering: B's five jobs
        # are five invoices of five orders.
        for step in range(5):
            oid = f"{prefix}B-{tick:05d}-{step:02d}"
            sent[oid] = time.time()
            body = invoice_body(tick)
            post_invoice.apply_async(kwargs={"account": B, "order_id": oid, "body": body})
    return sent, lag


def _parks(ctx: Context, jobs: list[tuple[str, str]]) -> tuple[int, int]:
    """(A's jobs dispatched, A's claims that found it over its rate and parked the job):
    every dispatch after a job's first follows a park here (no faults), plus those parked now."""
    from vtex_relay.store.keys import OrderRef

    pipe = ctx.redis().pipeline(transaction=False)
    for oid, job_id in jobs:
        pipe.hmget(OrderRef(A, oid).job_key(job_id), "dispatches", "state")
    dispatched = parks = 0
    for dispatches, state in pipe.execute():
        dispatched += int(dispatches or 0) > 0
        parks += max(0, int(dispatches or 0) - 1) + (state == b"throttled")
    return dispatched, parks


def run(ctx: Context, system: System, backlog: int, seconds: float) -> Outcome:
    since = ctx.fresh(LATENCY_MS)
    prefix = ctx.prefix()
    a_jobs = _enqueue_a(system, prefix, backlog) if backlog else []
    client = ctx.redis()
    held = f"{system.queue}:bench-held"
    if backlog and system.kind == "plain":
        client.rename(system.queue, held)  # hidden until both workers are ready
    workers = system.workers(ctx.env, prefix.lower())
    try:
        start_workers(workers)
        if backlog and system.kind == "plain":
            client.rename(held, system.queue)
        started = time.time()
        sent, lag = _produce_b(system, prefix, seconds)
        ended = time.time()
        expected = 5 * len(sent) if system.kind == "relay" else len(sent)
        # Plain Celery's B waits behind the whole backlog: give it time to drain, within a cap.
        cap = ended + 60 + (backlog / 150 if system.kind == "plain" else 0)
        got: list[Any] = []
        while time.time() < cap:
            got = [r for r in ctx.sb.requests(account=B, since=since) if r.method != "GET"]
            if len(got) >= expected:
                break
            time.sleep(0.5)
        if ctx.post_errors():
            raise BenchError(f"the sandbox refused calls: {ctx.sb.stats()['counters']}")
        errors = [line for w in workers for line in w.errors()]
        if errors:
            raise BenchError("worker errors:\n" + "\n".join(errors))
    finally:
        stop_workers(workers)
    latencies = [1000 * (r.received_at - sent[r.order_id]) for r in got]
    missing = max(0, expected - len(got))
    if missing:  # still queued at the cap: at least as late as the last one enqueued
        latencies += [1000 * (cap - max(sent.values()))] * missing
    a_calls = [r for r in ctx.sb.requests(account=A, since=since) if r.method != "GET"]
    outcome = Outcome(
        system=system,
        backlog=backlog,
        latencies_ms=sorted(latencies),
        missing=missing,
        a_in_window=sum(started <= r.received_at <= ended for r in a_calls),
        window=ended - started,
        parks=_parks(ctx, a_jobs) if a_jobs else None,
        lag_ms=1000 * lag,
    )
    info(
        f"{system.label}, A backlog {backlog:,}: B p50 {outcome.pct(0.5):,.0f} ms, p99 "
        f"{outcome.pct(0.99):,.0f} ms ({missing} missing); A {outcome.a_in_window} calls in "
        f"{outcome.window:.1f}s; parks {outcome.parks}"
    )
    return outcome


def _row(o: Outcome) -> str:
    n = len(o.latencies_ms)
    bound = "≥ " if o.missing else ""
    p50, p99, worst = o.pct(0.5), o.pct(0.99), o.latencies_ms[-1]
    a_rate = f"{o.a_in_window:,} ({o.a_in_window / o.window:,.0f}/s)" if o.backlog else "—"
    parks = "—" if o.parks is None else f"{o.parks[1]:,} ({o.parks[0]:,} dispatched)"
    return (
        f"| {o.system.label} | {o.backlog:,} | {n - o.missing:,} of {n:,} | "
        f"{p50:,.0f} ms | {bound}{p99:,.0f} ms | {bound}{worst:,.0f} ms "
        f"| {a_rate} | {parks} | {o.lag_ms:.0f} ms |"
    )


def report(
    outcomes: list[Outcome], seconds: float, command: str, minutes: float, redis_version: str
) -> str:
    lines = [
        "| system | A's backlog (jobs) | B's jobs delivered | B p50 | B p99 | B max "
        "| A's calls during B's window | A's throttled parks | B producer lag |",
        "|" + "---|" * 9,
        *(_row(o) for o in outcomes),
        "",
    ]
    for kind in ("relay", "plain"):
        alone = next(o for o in outcomes if o.system.kind == kind and not o.backlog)
        loaded = next(o for o in outcomes if o.system.kind == kind and o.backlog)
        ratio = loaded.pct(0.99) / alone.pct(0.99)
        target = " (target ≤ 2x)" if kind == "relay" else ""
        lines.append(
            f"- {alone.system.label}: B's p99 with A's backlog / alone = {ratio:.1f}x{target}"
        )
    lines += [
        "",
        f"B: one order every {TICK * 1000:.0f} ms for {seconds:g} s, enqueued as one call "
        "(`enqueue_many` of its invoice, tracking number and three tracking updates; they run "
        "in order, so the fifth waits for the four before it: p50/p99 over all five). Plain "
        "Celery has one task, the invoice POST, and no ordering: B's five jobs are five "
        "invoices of five orders, each an `apply_async`. Latency: from just before the enqueue "
        "call to the sandbox receiving the call (its request log, `received_at`), sandbox "
        f"latency {LATENCY_MS:g} ms. A: invoice jobs, enqueued before the workers start "
        f'(`VTEX_ACCOUNTS={{"{A}": {{"rate": {A_RATE}, "burst": {A_BURST}}}}}`, B unlimited, '
        "`DISPATCH_WINDOW` default, `VERIFY_ORDER_TOTAL=false`: one call per job in both "
        "systems). Plain Celery: FIFO, no rate limit (Celery's `rate_limit` is per task type "
        "and per worker: it would limit B too), so A drains at full speed and B waits behind "
        "what is left of it; its run is capped at 60 s + 1 s per 150 backlog jobs after B's "
        "window (≥: jobs still undelivered count as the cap). Throttled parks: A's claims that "
        "found A over its rate and parked the job in `vr:delayed` (dispatches after a job's "
        "first, plus jobs parked at the end).",
        "",
        machine_line(redis_version),
        f"Command: `{command}` ({minutes:.1f} min)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.noisy_neighbour", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5,000 A jobs, 10 s of B (~2 min)")
    args = parser.parse_args(argv)
    backlog, seconds = (5_000, 10.0) if args.quick else (50_000, 30.0)
    # Before vtex-relay reads its settings (the producer here, the workers from ctx.env).
    os.environ["VTEX_ACCOUNTS"] = json.dumps({A: {"rate": A_RATE, "burst": A_BURST}})
    os.environ["VERIFY_ORDER_TOTAL"] = "false"
    started = time.monotonic()
    ctx = Context(Plan.make(args.quick, 1))
    outcomes: list[Outcome] = []
    try:
        ctx.setup()
        redis_version = ctx.redis_server.version()
        for system in (RELAY_PROCFILE, PLAIN):
            for size in (0, backlog):
                outcomes.append(run(ctx, system, size, seconds))
    finally:
        ctx.teardown()
    command = "python -m bench.noisy_neighbour" + (" --quick" if args.quick else "")
    minutes = (time.monotonic() - started) / 60
    text = report(outcomes, seconds, command, minutes, redis_version)
    print(text)
    name = "noisy-neighbour-quick.md" if args.quick else "noisy-neighbour.md"
    Path(__file__).with_name(name).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
