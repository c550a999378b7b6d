"""One end-to-end run: enqueue a backlog, start the workers, time until the last job is applied.

The backlog (the Celery queue, a Redis list) is renamed away while the workers start, and
renamed back, in one atomic step, once every worker is ready. The time runs from that step to
the last POST applied in the sandbox's request log (same machine clock): a drained backlog,
without worker start-up or enqueueing, and without one worker starting before the other.
Also recorded: CPU time of each component per job, Redis commands per job, and POSTs per job
(1.0 = no duplicate sends).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from bench.context import Context, info
from bench.harness import BenchError, Worker, stop_workers
from bench.procstats import cpu_seconds, machine_busy_seconds, rss_kb
from bench.systems import System
from tests.harness import start_workers


@dataclass
class RunResult:
    system: System
    latency_ms: float
    jobs: int
    seconds: float
    cpu_ms_per_job: dict[str, float]
    redis_cmds_per_job: float
    posts_per_job: float
    enqueue_seconds: float
    backlog_bytes: int  # Redis memory taken by the waiting backlog
    retained_bytes: int  # Redis memory still taken once every job is delivered
    foreign_cores: float  # CPU used meanwhile by processes not part of the run, in cores
    peak_rss_kb: list[int] = field(default_factory=list)  # per worker, sampled while draining
    idle_rss_kb: list[int] = field(default_factory=list)  # per worker, after draining

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


class RssSampler:
    """Samples each worker's process-tree RSS every *interval* s in a thread; keeps the peak."""

    def __init__(self, workers: list[Worker], interval: float = 0.5) -> None:
        self.workers = workers
        self.interval = interval
        self.peaks = [0 for _ in workers]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> list[int]:
        now = [rss_kb(w.pid) if w.process is not None else 0 for w in self.workers]
        self.peaks = [max(p, n) for p, n in zip(self.peaks, now, strict=True)]
        return now

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def delivery_run(
    ctx: Context,
    system: System,
    latency_ms: float,
    jobs: int,
    *,
    timeout: float,
    sample_rss: bool = False,
) -> RunResult:
    """Enqueue *jobs* into *system*, then start its workers and wait until all are applied."""
    since = ctx.fresh(latency_ms)
    prefix = ctx.prefix()
    memory_before = ctx.redis_memory()
    enqueued, enqueue_seconds = system.enqueue(prefix, jobs)
    backlog_bytes = ctx.redis_memory() - memory_before
    if enqueued != jobs:
        raise BenchError(f"{system.label}: enqueued {enqueued} of {jobs} jobs")
    queue, held = system.queue, f"{system.queue}:bench-held"
    client = ctx.redis()
    client.rename(queue, held)  # hidden from the workers until all of them are ready
    workers = system.workers(ctx.env, prefix.lower())
    sampler = RssSampler(workers)
    idle: list[int] = []
    try:
        start_workers(workers)
        workers_before = [cpu_seconds(w.pid) for w in workers]
        commands_before = ctx.redis_commands()
        components_before = ctx.cpu()
        busy_before, own_before = machine_busy_seconds(), time.process_time()
        released = time.time()
        client.rename(held, queue)  # one atomic step: wakes the workers' BRPOP
        if sample_rss:
            with sampler:
                ctx.wait_applied(jobs, timeout)
        else:
            ctx.wait_applied(jobs, timeout)
        workers_cpu = sum(cpu_seconds(w.pid) for w in workers) - sum(workers_before)
        components = {k: v - components_before[k] for k, v in ctx.cpu().items()}
        busy = machine_busy_seconds() - busy_before
        own = time.process_time() - own_before
        drained = time.time() - released
        commands = ctx.redis_commands() - commands_before
        retained_bytes = ctx.redis_memory() - memory_before
        if sample_rss:
            idle = _idle_rss(workers)
        errors = [line for w in workers for line in w.errors()]
        if errors:
            raise BenchError(f"{system.label}: worker errors:\n" + "\n".join(errors))
    finally:
        stop_workers(workers)
    posts = ctx.posts(since)
    applied = [p.applied_at for p in posts if p.applied_at is not None]
    if len(applied) < jobs:
        raise BenchError(f"{system.label}: {len(applied)} of {jobs} POSTs applied in the log")
    seconds = max(applied) - released
    cpu = {"workers": workers_cpu, **components}
    ours = sum(cpu.values()) + own
    foreign = max(0.0, busy - ours) / drained if drained > 0 else 0.0
    result = RunResult(
        system=system,
        latency_ms=latency_ms,
        jobs=jobs,
        seconds=seconds,
        cpu_ms_per_job={k: 1000 * v / jobs for k, v in cpu.items()},
        redis_cmds_per_job=commands / jobs,
        posts_per_job=len(posts) / jobs,
        enqueue_seconds=enqueue_seconds,
        backlog_bytes=backlog_bytes,
        retained_bytes=retained_bytes,
        foreign_cores=foreign,
        peak_rss_kb=sampler.peaks if sample_rss else [],
        idle_rss_kb=idle,
    )
    info(
        f"{system.label} @ {latency_ms:g} ms: {jobs} jobs in {seconds:.2f}s = "
        f"{result.rate:,.0f} jobs/s (enqueue {enqueue_seconds:.1f}s, other load "
        f"{foreign:.2f} cores)"
    )
    return result


def _idle_rss(workers: list[Worker]) -> list[int]:
    """Each worker's RSS once drained and idle (the median of 3 samples 0.5 s apart)."""
    samples: list[list[int]] = []
    for _ in range(3):
        time.sleep(0.5)
        samples.append([rss_kb(w.pid) for w in workers])
    return [sorted(column)[1] for column in zip(*samples, strict=True)]
