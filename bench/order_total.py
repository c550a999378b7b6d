"""``python -m bench.order_total [--jobs N] [--repeats N]``: what the order-total check costs.

With ``VERIFY_ORDER_TOTAL`` on, a worker reads the order (one GET) before each invoice POST.
This runs the same end-to-end delivery with the check off and on, interleaved (off, on, off,
on...: a slow spell of a shared host falls on both), at 0 and 100 ms sandbox latency, with
vtex-relay's workers as in the Procfile (2 processes, threads 64). The workload is *N*
single-invoice orders, each with the guide's invoice (``examples/invoice.json``: 10000, the
sandbox's default order total, so the check passes and every job is POSTed).

Each run: enqueue the backlog, hide it while the workers start, release it and time the drain
to the last POST applied (as ``bench/delivery.py``); meanwhile the workers' CPU (``/proc``),
the sandbox's requests by method and the machine's other load. Then, workers still running, an
open-loop trickle far below capacity measures enqueue -> applied without queueing. Writes a
table to ``bench/order-total.md``. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Context, Plan, info
from bench.harness import BenchError, Worker, stop_workers
from bench.procstats import cpu_seconds, machine_busy_seconds
from bench.report import machine_line
from bench.systems import RELAY_PROCFILE
from bench.workload import ACCOUNT
from tests.harness import start_workers, wait_for

INVOICE: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "examples" / "invoice.json").read_text()
)
LATENCIES = (0.0, 100.0)
TRICKLE_RATE = 25.0  # jobs/s of the open-loop latency probe: ~15-20% of the slower capacity
TRICKLE_JOBS = 100
DRAIN_TIMEOUT = 180.0


@dataclass(frozen=True)
class Config:
    latency_ms: float
    verify: bool

    @property
    def label(self) -> str:
        return f"{self.latency_ms:g} ms, VERIFY_ORDER_TOTAL={'true' if self.verify else 'false'}"


@dataclass(frozen=True)
class Run:
    config: Config
    jobs: int
    seconds: float  # release -> last POST applied
    worker_cpu_ms: float  # per job, both worker process trees
    sandbox_cpu_ms: float
    redis_cpu_ms: float
    gets: float  # sandbox requests per job, by method
    posts: float
    other_cores: float  # CPU used meanwhile by processes not part of the run
    p50_ms: float  # enqueue -> applied, open-loop trickle
    p99_ms: float
    gap_ms: float | None  # trickle, check on: GET received -> POST received at the sandbox, p50

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _counts(ctx: Context) -> dict[str, int]:
    """Sandbox requests answered so far, per method (any status)."""
    counters: dict[str, dict[str, int]] = ctx.sb.stats()["counters"]
    return {method: sum(by_status.values()) for method, by_status in counters.items()}


def _wait_posted(ctx: Context, count: int, timeout: float) -> None:
    """Until the sandbox applied *count* POSTs; fail at once on a refused POST or a dead job."""
    from vtex_relay.store.keys import DEAD

    client = ctx.redis()

    def done() -> bool:
        if ctx.post_errors():
            raise BenchError(f"the sandbox refused POSTs: {ctx.sb.stats()['counters']}")
        if client.hlen(DEAD):
            raise BenchError(f"{client.hlen(DEAD)} jobs dead-lettered (the total check failed?)")
        return ctx.posts_ok() >= count

    wait_for(done, timeout=timeout, what=f"{count} POSTs applied", interval=0.05, error=BenchError)


def _workers(ctx: Context, config: Config, tag: str) -> list[Worker]:
    env = {**ctx.env, "VERIFY_ORDER_TOTAL": "true" if config.verify else "false"}
    return RELAY_PROCFILE.workers(env, tag)


def one_run(ctx: Context, config: Config, jobs: int) -> Run:
    from vtex_relay import enqueue_invoice
    from vtex_relay.produce.api import build_job, enqueue_many
    from vtex_relay.store.messages import QUEUE

    since = ctx.fresh(config.latency_ms)
    prefix = ctx.prefix()
    results = enqueue_many(
        build_job("invoice", f"{prefix}-{i:07d}-01", INVOICE, account=ACCOUNT) for i in range(jobs)
    )
    enqueued = sum(1 for r in results if r.verdict == "enqueued")
    if enqueued != jobs:
        raise BenchError(f"enqueued {enqueued} of {jobs} jobs")
    client = ctx.redis()
    held = f"{QUEUE}:bench-held"
    client.rename(QUEUE, held)  # hidden until both workers are ready
    workers = _workers(ctx, config, prefix.lower())
    sent: dict[str, float] = {}
    try:
        start_workers(workers)
        before = [cpu_seconds(w.pid) for w in workers]
        components_before = ctx.cpu()
        busy_before, own_before = machine_busy_seconds(), time.process_time()
        released = time.time()
        client.rename(held, QUEUE)
        _wait_posted(ctx, jobs, DRAIN_TIMEOUT)
        worker_cpu = sum(cpu_seconds(w.pid) for w in workers) - sum(before)
        components = {k: v - components_before[k] for k, v in ctx.cpu().items()}
        busy = machine_busy_seconds() - busy_before
        own = time.process_time() - own_before
        drained = time.time() - released
        counts = _counts(ctx)
        drain_seq: int = ctx.sb.health()["lastSeq"]
        # The trickle: one producer on a fixed schedule (open loop), enqueue -> POST applied.
        started = time.time()
        for index in range(TRICKLE_JOBS):
            pause = started + index / TRICKLE_RATE - time.time()
            if pause > 0:
                time.sleep(pause)
            oid = f"{prefix}T-{index:07d}-01"
            sent[oid] = time.time()
            enqueue_invoice(oid, INVOICE, account=ACCOUNT)
        _wait_posted(ctx, jobs + TRICKLE_JOBS, 60)
        errors = [line for w in workers for line in w.errors()]
        if errors:
            raise BenchError("worker errors:\n" + "\n".join(errors))
    finally:
        stop_workers(workers)
    posts = ctx.posts(since)
    applied = {p.order_id: p.applied_at for p in posts if p.applied_at is not None}
    drain_applied = [p.applied_at for p in posts if p.seq <= drain_seq and p.applied_at]
    if len(drain_applied) < jobs:
        raise BenchError(f"{len(drain_applied)} of {jobs} POSTs applied in the log")
    lat = sorted(1000 * (applied[oid] - at) for oid, at in sent.items() if oid in applied)
    if len(lat) != TRICKLE_JOBS:
        raise BenchError(f"trickle: {len(lat)} of {TRICKLE_JOBS} jobs applied")
    gets = {r.order_id: r.received_at for r in ctx.sb.requests(method="GET", since=drain_seq)}
    gaps = sorted(1000 * (p.received_at - gets[p.order_id]) for p in posts if p.order_id in gets)
    ours = worker_cpu + sum(components.values()) + own
    run = Run(
        config=config,
        jobs=jobs,
        seconds=max(drain_applied) - released,
        worker_cpu_ms=1000 * worker_cpu / jobs,
        sandbox_cpu_ms=1000 * components["sandbox"] / jobs,
        redis_cpu_ms=1000 * components["redis"] / jobs,
        gets=counts.get("GET", 0) / jobs,
        posts=counts.get("POST", 0) / jobs,
        other_cores=max(0.0, busy - ours) / drained if drained > 0 else 0.0,
        p50_ms=lat[len(lat) // 2],
        p99_ms=lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        gap_ms=gaps[len(gaps) // 2] if gaps else None,
    )
    info(
        f"{config.label}: {jobs} jobs in {run.seconds:.2f}s = {run.rate:,.0f} jobs/s, worker "
        f"CPU {run.worker_cpu_ms:.2f} ms/job, GET/POST per job {run.gets:.2f}/{run.posts:.2f}, "
        f"trickle p50 {run.p50_ms:.1f} ms, other load {run.other_cores:.2f} cores"
    )
    return run


def _med(runs: list[Run], field: str) -> float:
    return statistics.median(float(getattr(r, field)) for r in runs)


def _gap(runs: list[Run]) -> str:
    gaps = [r.gap_ms for r in runs if r.gap_ms is not None]
    return f"{statistics.median(gaps):.1f} ms" if gaps else "— (no GET)"


def _runs(runs: list[Run], field: str, fmt: str) -> str:
    return " / ".join(format(float(getattr(r, field)), fmt) for r in runs)


def report(
    runs: list[Run], jobs: int, repeats: int, minutes: float, load: str, redis_version: str
) -> str:
    configs = list(dict.fromkeys(r.config for r in runs))
    by = {c: [r for r in runs if r.config == c] for c in configs}
    head = (
        "| sandbox latency, VERIFY_ORDER_TOTAL | jobs/s (runs) | worker CPU ms/job (runs) "
        "| sandbox CPU ms/job | Redis CPU ms/job | sandbox GET / POST per job "
        "| enqueue → applied p50 (p99), trickle | GET → POST received, p50, trickle "
        "| other load on the machine, cores (runs) |"
    )
    lines = [head, "|" + "---|" * 9]
    for config, rs in by.items():
        lines.append(
            f"| {config.latency_ms:g} ms, {'true' if config.verify else 'false'} "
            f"| **{_med(rs, 'rate'):,.0f}** ({_runs(rs, 'rate', ',.0f')}) "
            f"| **{_med(rs, 'worker_cpu_ms'):.2f}** ({_runs(rs, 'worker_cpu_ms', '.2f')}) "
            f"| {_med(rs, 'sandbox_cpu_ms'):.2f} | {_med(rs, 'redis_cpu_ms'):.2f} "
            f"| {_med(rs, 'gets'):.2f} / {_med(rs, 'posts'):.2f} "
            f"| {_med(rs, 'p50_ms'):.1f} ms ({_med(rs, 'p99_ms'):.1f} ms) | {_gap(rs)} "
            f"| {_runs(rs, 'other_cores', '.2f')} |"
        )
    lines += [
        "",
        "The check's cost, per latency: on minus off, for each adjacent pair of runs (median, "
        "and the pairs):",
        "",
        "| sandbox latency | worker CPU per job | jobs/s | enqueue → applied p50 |",
        "|---|---|---|---|",
    ]
    for latency in LATENCIES:
        off = by[Config(latency, False)]
        on = by[Config(latency, True)]
        pairs = list(zip(off, on, strict=True))
        cpu = [b.worker_cpu_ms - a.worker_cpu_ms for a, b in pairs]
        rate = [100 * (b.rate / a.rate - 1) for a, b in pairs]
        p50 = [b.p50_ms - a.p50_ms for a, b in pairs]
        lines.append(
            f"| {latency:g} ms "
            f"| {statistics.median(cpu):+.2f} ms ({', '.join(f'{v:+.2f}' for v in cpu)}) "
            f"| {statistics.median(rate):+.0f}% ({', '.join(f'{v:+.0f}%' for v in rate)}) "
            f"| {statistics.median(p50):+.1f} ms ({', '.join(f'{v:+.1f}' for v in p50)}) |"
        )
    lines += [
        "",
        f"{RELAY_PROCFILE.label} (as in the Procfile), `VTEX_RATE_LIMIT=0`. Each run: {jobs:,} "
        "orders of one invoice each (`examples/invoice.json`, 10000 = the sandbox's order "
        "total, so the check passes), enqueued first and released at once to both workers; "
        "jobs/s from the release to the last POST applied in the sandbox's log; CPU from "
        "`/proc` over that drain (a worker: its process tree); GET / POST per job: the "
        "sandbox's request counters over the drain. Trickle: then, workers still running, "
        f"{TRICKLE_JOBS} more jobs enqueued one by one (`enqueue_invoice`) at "
        f"{TRICKLE_RATE:g} jobs/s, from enqueue to the POST applied (the sandbox applies after "
        "its latency); GET → POST: for each of those orders, from the sandbox receiving the "
        "GET to it receiving the POST (the GET's latency and round trip, the check, the "
        "worker's path to the POST). Other load: the machine's busy CPU during the drain minus "
        "that of this run's processes (other engineers' tests share this host).",
        f"{repeats} runs per configuration, interleaved (each repeat: 0 ms off, on, then "
        f"100 ms off, on); {minutes:.1f} min; load average {load} (it counts this run's "
        "own runnable worker threads too: read the other-load column for the rest of the "
        "machine).",
        "",
        machine_line(redis_version),
        "Command: `.venv/bin/python -m bench.order_total" + _argv() + "`",
    ]
    return "\n".join(lines)


def _argv() -> str:
    return "".join(f" {a}" for a in sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.order_total", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2_000, help="invoice jobs per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    started = time.monotonic()
    load_before = _loadavg()
    ctx = Context(Plan.make(True, 1))
    runs: list[Run] = []
    redis_version = "?"
    try:
        ctx.setup()
        redis_version = ctx.redis_server.version()
        for repeat in range(args.repeats):
            info(f"repeat {repeat + 1}/{args.repeats}")
            for latency in LATENCIES:
                for verify in (False, True):
                    runs.append(one_run(ctx, Config(latency, verify), args.jobs))
    finally:
        ctx.teardown()
    minutes = (time.monotonic() - started) / 60
    load = f"{load_before} at the start, {_loadavg()} at the end"
    text = report(runs, args.jobs, args.repeats, minutes, load, redis_version)
    print(text)
    Path(__file__).with_name("order-total.md").write_text(text + "\n", encoding="utf-8")
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
