"""End-to-end delivery of every system at 0 and 100 ms, and the issue's targets as ratios.

Each figure is a median of runs; the runs of the systems are interleaved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.context import Context
from bench.delivery import RunResult, delivery_run
from bench.report import Row, fmt_rate, fmt_runs, median
from bench.systems import (
    PLAIN_PREFORK,
    PLAIN_THREADS,
    RELAY_CEILING,
    RELAY_DEFAULT,
    RELAY_PROCFILE,
    WATCHED,
    System,
)

MAX_DRAIN_SECONDS = 600.0


@dataclass
class Series:
    """The runs of one system at one latency."""

    system: System
    latency_ms: float
    runs: list[RunResult] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return median([r.rate for r in self.runs])

    def cpu(self, what: str) -> float:
        """The median CPU per job (ms) of *what*: ``workers``, ``redis`` or ``sandbox``."""
        return median([r.cpu_ms_per_job[what] for r in self.runs])


def _size(ctx: Context, expected_rate: float) -> int:
    jobs = int(expected_rate * ctx.plan.run_seconds)
    return max(200, min(ctx.plan.max_jobs, jobs))


def _timeout(jobs: int, expected_rate: float) -> float:
    return min(MAX_DRAIN_SECONDS, max(60.0, 6 * jobs / max(expected_rate, 1.0)))


def delivery(ctx: Context) -> tuple[list[Row], Series]:
    """Every system at 0 ms, then at 100 ms; returns the rows and vtex-relay's 100 ms series.

    The runs are interleaved (run 1 of every system, then run 2 of every system...), so that
    a slow spell of a shared machine does not fall on one system's runs only.
    """
    plan = ctx.plan
    tries = [
        System("relay", 2, "threads", c)
        for c in plan.concurrencies
        if c != RELAY_PROCFILE.concurrency
    ]
    systems = [RELAY_PROCFILE, *tries, RELAY_DEFAULT, PLAIN_PREFORK, *PLAIN_THREADS, *WATCHED]
    all_series: list[Series] = []
    for latency in (0.0, 100.0):
        series = {system: Series(system, latency) for system in systems}
        for repeat in range(plan.repeats):
            for system in systems:
                if system in tries and repeat > 0:
                    continue  # other concurrencies than the Procfile's: one try each
                done = series[system]
                expected = done.rate if done.runs else _guess(system, latency)
                jobs = _size(ctx, expected)
                done.runs.append(
                    delivery_run(ctx, system, latency, jobs, timeout=_timeout(jobs, expected))
                )
        all_series += series.values()
    rows = [_delivery_row(s) for s in all_series]
    hundred = {s.system: s for s in all_series if s.latency_ms == 100}
    zero = {s.system: s for s in all_series if s.latency_ms == 0}
    for item in hundred.values():
        bound = item.system.slots / 0.1
        rows.append(
            Row(
                "3. ratio to the bound at 100 ms",
                item.system.label,
                f"{item.rate / bound:.0%}",
                fmt_runs([r.rate / bound * 100 for r in item.runs]),
                f"bound = {item.system.processes} processes x "
                f"{item.system.slots // item.system.processes} / 0.1 s = {bound:,.0f} jobs/s",
            )
        )
    rows += _targets(zero, hundred)
    rows += ceiling(ctx, zero[RELAY_PROCFILE])
    return rows, hundred[RELAY_PROCFILE]


def _guess(system: System, latency_ms: float) -> float:
    """A first run's expected rate (jobs/s), to size it; later runs use the measured rate."""
    cpu_bound = 400.0
    return cpu_bound if latency_ms == 0 else min(cpu_bound, system.slots / (latency_ms / 1000))


def _targets(zero: dict[System, Series], hundred: dict[System, Series]) -> list[Row]:
    """The issue's delivery targets, each as a ratio of two medians measured in this run."""
    relay, watched_relay, watched_plain = RELAY_PROCFILE, WATCHED[0], WATCHED[1]
    best = max(PLAIN_THREADS, key=lambda s: hundred[s].rate)
    same_pool = next(s for s in PLAIN_THREADS if s.concurrency == relay.concurrency)

    def ratio(table: dict[System, Series], ours: System, theirs: System, target: str) -> Row:
        value = table[ours].rate / table[theirs].rate
        return Row(
            "7. against the targets",
            f"{ours.label} / {theirs.label}, {table[ours].latency_ms:g} ms",
            f"{value:.2f}x",
            f"{fmt_rate(table[ours].rate)} / {fmt_rate(table[theirs].rate)}",
            target,
        )

    def cpu(table: dict[System, Series], what: str, target: str) -> Row:
        ours, theirs = table[relay].cpu(what), table[same_pool].cpu(what)
        return Row(
            "7. against the targets",
            f"{what} CPU per job, {relay.label} / {same_pool.label}, "
            f"{table[relay].latency_ms:g} ms",
            f"{ours / theirs:.2f}x",
            f"{ours:.3f} / {theirs:.3f} ms",
            target,
        )

    def check(table: dict[System, Series]) -> Row:
        on, off = table[RELAY_DEFAULT], table[relay]
        return Row(
            "7. against the targets",
            f"the order-total check's cost, {table[relay].latency_ms:g} ms",
            f"{on.cpu('workers') - off.cpu('workers'):+.2f} ms worker CPU per invoice job",
            f"{on.cpu('workers'):.2f} (on) - {off.cpu('workers'):.2f} (off) ms; "
            f"{fmt_rate(on.rate)} / {fmt_rate(off.rate)}",
            "target <= +1 ms (one GET order per invoice, read for its totals only)",
        )

    return [
        ratio(hundred, relay, PLAIN_PREFORK, "target >= 10x plain Celery's default workers"),
        ratio(hundred, relay, best, "target >= 1.2x plain Celery's best threads pool (32/48/64)"),
        ratio(zero, relay, same_pool, "target >= 0.8x plain Celery, same pool and concurrency"),
        cpu(zero, "redis", "target <= 1x plain Celery's, on the same Redis"),
        cpu(zero, "workers", "target <= 1x plain Celery's, same pool"),
        cpu(hundred, "workers", "target <= 1x plain Celery's, same pool"),
        check(zero),
        check(hundred),
        ratio(hundred, watched_relay, watched_plain, "like for like with Flower watching"),
        ratio(zero, watched_relay, watched_plain, "like for like with Flower watching"),
    ]


def ceiling(ctx: Context, zero: Series) -> list[Row]:
    """How far one Redis goes: the jobs/s one Redis core sustains at vtex-relay's measured
    Redis CPU per job, and a run with as many worker processes as the machine has use for."""
    per_job = zero.cpu("redis")
    jobs = _size(ctx, zero.rate)
    run = delivery_run(ctx, RELAY_CEILING, 0.0, jobs, timeout=_timeout(jobs, zero.rate))
    cores = run.cpu_ms_per_job["redis"] * run.rate / 1000
    return [
        Row(
            "8. the ceiling: one Redis",
            zero.system.label,
            f"{1000 / per_job:,.0f} jobs/s per Redis core",
            f"{per_job:.3f} ms Redis CPU per job (median, 0 ms)",
            "1 / Redis CPU per job: where one Redis core is busy all the time, however many "
            "workers are added",
        ),
        Row(
            "8. the ceiling: one Redis",
            RELAY_CEILING.label,
            fmt_rate(run.rate),
            f"Redis {cores:.2f} cores",
            f"{run.jobs:,} jobs at 0 ms; Redis CPU {run.cpu_ms_per_job['redis']:.3f} ms/job, "
            f"workers {run.cpu_ms_per_job['workers']:.2f} ms/job: "
            + (
                "Redis is the limit"
                if cores > 0.9
                else "on this machine the workers' CPU, not Redis, is what stops it"
            ),
        ),
    ]


def _delivery_row(series: Series) -> Row:
    runs = series.runs
    cpu = {k: median([r.cpu_ms_per_job[k] for r in runs]) for k in runs[0].cpu_ms_per_job}
    cpu_text = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
    count = "1 run (a try)" if len(runs) == 1 else f"{len(runs)} runs"
    notes = (
        f"{runs[-1].jobs:,} jobs ({count}); CPU ms/job: {cpu_text}; "
        f"Redis commands/job {median([r.redis_cmds_per_job for r in runs]):.1f}; "
        f"POSTs/job {max(r.posts_per_job for r in runs):.2f}; other load on the machine "
        f"{max(r.foreign_cores for r in runs):.2f} cores"
    )
    section = f"2. end-to-end, sandbox latency {series.latency_ms:g} ms"
    return Row(
        section, series.system.label, fmt_rate(series.rate), fmt_runs([r.rate for r in runs]), notes
    )
