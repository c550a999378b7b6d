"""Enqueue rates, latency under load, memory and cost growth (end-to-end delivery: comparison).

Each returns rows of the result table; every figure is a median of runs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.comparison import MAX_DRAIN_SECONDS, Series
from bench.context import Context, info
from bench.delivery import RunResult, delivery_run
from bench.harness import BenchError, cli_batch, stop_workers
from bench.plain_celery import QUEUE as PLAIN_QUEUE
from bench.report import Row, fmt_mib, fmt_rate, fmt_runs, median
from bench.systems import (
    RELAY_PROCFILE,
    enqueue_plain_loop,
    enqueue_relay_batch,
    enqueue_relay_loop,
)
from bench.workload import ACCOUNT, order_id, write_batch
from tests.harness import start_workers
from vtex_relay.store import keys
from vtex_relay.store.messages import QUEUE as RELAY_QUEUE

# --- 1. enqueue rate -------------------------------------------------------------------------


def _queued(ctx: Context, queue: str) -> int:
    return int(ctx.redis().llen(queue))


def _relay_jobs(ctx: Context) -> int:
    """vtex-relay's enqueued jobs (one per order): those with a message (at most the account's
    DISPATCH_WINDOW) and those waiting in the account's line."""
    return _queued(ctx, RELAY_QUEUE) + _queued(ctx, keys.account(ACCOUNT, "line"))


def enqueue_rates(ctx: Context) -> list[Row]:
    plan = ctx.plan
    count = plan.enqueue_jobs
    cli_total: list[float] = []
    cli_startup: list[float] = []
    loop: list[float] = []
    many: list[float] = []
    plain: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vtex-relay-bench-") as tmp:
        for _ in range(plan.repeats):
            ctx.fresh(0)
            one = write_batch(Path(tmp) / "one.jsonl", ctx.prefix(), 1)
            cli_startup.append(cli_batch(ctx.env, one))
            ctx.fresh(0)
            batch = write_batch(Path(tmp) / "batch.jsonl", ctx.prefix(), count)
            cli_total.append(cli_batch(ctx.env, batch))
            _expect(_relay_jobs(ctx), count, "CLI batch")

            ctx.fresh(0)
            enqueue_relay_loop(ctx.prefix(), 1)  # warm up: connection, scripts, settings
            ctx.fresh(0)
            done, seconds = enqueue_relay_loop(ctx.prefix(), count)
            loop.append(done / seconds)
            _expect(_relay_jobs(ctx), done, "enqueue_invoice loop")

            ctx.fresh(0)
            done, seconds = enqueue_relay_batch(ctx.prefix(), count)
            many.append(done / seconds)
            _expect(_relay_jobs(ctx), count, "enqueue_many")

            ctx.fresh(0)
            enqueue_plain_loop(ctx.prefix(), 1)
            ctx.fresh(0)
            done, seconds = enqueue_plain_loop(ctx.prefix(), count)
            plain.append(done / seconds)
            _expect(_queued(ctx, PLAIN_QUEUE), done, "apply_async loop")
            info(
                f"enqueue {count}: CLI {cli_total[-1]:.2f}s (start-up {cli_startup[-1]:.2f}s), "
                f"enqueue_invoice {loop[-1]:,.0f}/s, enqueue_many {many[-1]:,.0f}/s, "
                f"apply_async {plain[-1]:,.0f}/s"
            )
    ctx.fresh(0)
    with_start = [count / t for t in cli_total]
    startup = median(cli_startup)
    without = [count / max(t - startup, 1e-9) for t in cli_total]
    section = f"1. enqueue rate ({count:,} invoice jobs)"
    return [
        Row(
            section,
            "vtex-relay CLI `enqueue batch FILE` (wall, incl. process start)",
            fmt_rate(median(with_start)),
            fmt_runs(with_start),
            f"without start-up ({startup:.2f}s, a 1-line batch): {fmt_rate(median(without))}",
        ),
        Row(
            section,
            "vtex-relay Python API, `enqueue_invoice` loop",
            fmt_rate(median(loop)),
            fmt_runs(loop),
            "one Redis round trip (enqueue.lua) per job",
        ),
        Row(
            section,
            "vtex-relay Python API, `enqueue_many` (the batch path)",
            fmt_rate(median(many)),
            fmt_runs(many),
            "pipelines of 1,000, overlapped",
        ),
        Row(
            section,
            "plain Celery `apply_async` loop",
            fmt_rate(median(plain)),
            fmt_runs(plain),
            "one LPUSH per job",
        ),
    ]


def _expect(found: int, wanted: int, what: str) -> None:
    if found != wanted:
        raise BenchError(f"{what}: {found} messages queued, expected {wanted}")


# --- 4. latency under a steady open-loop load ------------------------------------------------


def latency(ctx: Context, best: Series) -> list[Row]:
    from vtex_relay import enqueue_invoice

    system = best.system
    rate = 0.5 * best.rate
    count = max(10, int(rate * ctx.plan.latency_seconds))
    since = ctx.fresh(100)
    prefix = ctx.prefix()
    workers = system.workers(ctx.env, prefix.lower())
    sent: dict[str, float] = {}
    lag = 0.0
    try:
        start_workers(workers)
        started = time.time()
        for index in range(count):  # one producer thread, fixed schedule (open loop)
            due = started + index / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            lag = max(lag, time.time() - due)
            oid = order_id(prefix, index)
            sent[oid] = time.time()
            enqueue_invoice(oid, _body(index), account=ACCOUNT)
        ctx.wait_applied(count, timeout=60)
    finally:
        stop_workers(workers)
    applied = {p.order_id: p.applied_at for p in ctx.posts(since) if p.applied_at is not None}
    lat = sorted(1000 * (applied[oid] - at) for oid, at in sent.items() if oid in applied)
    if len(lat) != count:
        raise BenchError(f"latency run: {len(lat)} of {count} jobs applied")
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    info(f"latency at {rate:.0f}/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms, producer lag {lag:.3f}s")
    return [
        Row(
            "4. latency enqueue -> applied, 100 ms sandbox",
            system.label,
            f"p50 {p50:,.0f} ms, p99 {p99:,.0f} ms",
            "1 run",
            f"open loop: {count:,} jobs at {rate:,.0f} jobs/s (50% of its 100 ms throughput) over "
            f"{ctx.plan.latency_seconds:g}s from one producer thread (`enqueue_invoice`); "
            f"max {max(lat):,.0f} ms; producer fell behind its schedule by at most "
            f"{lag * 1000:.0f} ms",
        )
    ]


def _body(index: int) -> dict[str, object]:
    from bench.workload import invoice_body

    return invoice_body(index)


# --- 5./6. memory with a backlog, and cost growth --------------------------------------------


def growth_and_memory(ctx: Context) -> list[Row]:
    """vtex-relay (Procfile: 2 x threads 64) at 0 ms for each size; RSS sampled throughout."""
    rows: list[Row] = []
    by_size: dict[int, list[RunResult]] = {}
    for size in ctx.plan.growth_sizes:
        repeats = ctx.plan.repeats if size <= 1_000 else 1
        for _ in range(repeats):
            run = delivery_run(
                ctx, RELAY_PROCFILE, 0.0, size, timeout=MAX_DRAIN_SECONDS, sample_rss=True
            )
            by_size.setdefault(size, []).append(run)
    for size, runs in by_size.items():
        per_job = [1000 * r.seconds / r.jobs for r in runs]
        count = "1 run" if len(runs) == 1 else f"{len(runs)} runs"
        rows.append(
            Row(
                "6. cost growth, 0 ms sandbox",
                f"{RELAY_PROCFILE.label}: {size:,} jobs",
                f"{median(per_job):.2f} ms/job ({fmt_rate(median([r.rate for r in runs]))})",
                fmt_runs(per_job, 2),
                f"{count}; Redis memory with the backlog waiting: "
                f"{median([r.backlog_bytes for r in runs]) / size:,.0f} bytes/job, still held once "
                f"delivered: {median([r.retained_bytes for r in runs]) / size:,.0f} bytes/job; "
                f"other load {max(r.foreign_cores for r in runs):.2f} cores; worker CPU "
                f"{median([r.cpu_ms_per_job['workers'] for r in runs]):.2f} ms/job",
            )
        )
    sizes = sorted(by_size)
    largest = by_size[sizes[-1]][-1]
    warm = by_size[sizes[-2]][-1] if len(sizes) > 1 else largest
    rows.append(
        Row(
            "5. worker RSS (one worker process tree)",
            RELAY_PROCFILE.label,
            f"idle {fmt_mib(max(warm.idle_rss_kb))} -> peak {fmt_mib(max(largest.peak_rss_kb))}",
            f"per worker: idle {', '.join(fmt_mib(k) for k in warm.idle_rss_kb)}; peak "
            f"{', '.join(fmt_mib(k) for k in largest.peak_rss_kb)}",
            f"idle = warmed up, after draining {warm.jobs:,} jobs; peak = sampled every 0.5 s "
            f"while {largest.jobs:,} jobs waited in Redis and drained ({largest.seconds:.0f}s); "
            f"idle after that drain {fmt_mib(max(largest.idle_rss_kb))}",
        )
    )
    return rows
