"""``python -m bench.metrics_cost [--accounts N] [--jobs N] [--baseline REV]``: what the
metrics cost, written to bench/metrics.md.

1. A scrape at N accounts (1,000) and a backlog of M waiting jobs (100,000): the Redis commands,
   Redis CPU and wall time of one scrape (``RedisCollector``, as ``/metrics`` serves it), and the
   same with ten jobs, to show that the cost follows the accounts, not the backlog.
2. Worker CPU per delivered job with the metrics (this tree) and without them (the tree at
   ``--baseline``, checked out in a temporary git worktree): one worker (threads, 8) delivering
   the same jobs to the sandbox at 0 ms, its process's CPU from "ready" to the last delivery,
   in alternate rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.harness import ROOT, RedisServer
from bench.metrics_driver import BODY

OUT = Path(__file__).with_name("metrics.md")
BASELINE = "528adf5"  # issue 18's end: the last commit before the metrics


def scrape_cost(accounts: int, jobs: int) -> list[str]:
    redis_server = RedisServer().start()
    try:
        os.environ["REDIS_URL"] = redis_server.url
        os.environ.setdefault("VTEX_ACCOUNT", "bench0")
        from prometheus_client import CollectorRegistry, generate_latest

        from vtex_relay.jobs import Job
        from vtex_relay.ops.metrics import RedisCollector
        from vtex_relay.settings import Settings
        from vtex_relay.store.ordering import Ordering

        client = redis_server.client()
        ordering = Ordering(client)
        settings = Settings(vtex_app_key="k", vtex_app_token="t")  # noqa: S106
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RedisCollector(client, settings))
        rows = []
        for backlog in (10, jobs):
            client.flushall()
            batch = (
                Job(kind="invoice", order_id=f"o-{n}", account=f"bench{n % accounts}", body=BODY)
                for n in range(max(backlog, accounts))
            )
            for _ in ordering.enqueue(batch):
                pass
            generate_latest(registry)  # scripts and connections warm
            client.config_resetstat()
            cpu = _redis_cpu(client)
            started = time.perf_counter()
            rounds = 20
            for _ in range(rounds):
                text = generate_latest(registry)
            wall = (time.perf_counter() - started) / rounds
            used = (_redis_cpu(client) - cpu) / rounds
            stats = client.info("commandstats")
            calls = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
            rows.append(
                f"| {accounts:,} | {max(backlog, accounts):,} | {calls // rounds:,} | "
                f"{used * 1000:.1f} ms | {wall * 1000:.1f} ms | {len(text):,} |"
            )
        return [
            "| accounts | waiting jobs | Redis commands / scrape | Redis CPU / scrape "
            "| wall / scrape (collector) | bytes |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    finally:
        redis_server.stop()


def _redis_cpu(client: object) -> float:
    info = client.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def worker_cpu(tree: Path, jobs: int) -> float:
    """CPU seconds per job of one worker of *tree* delivering *jobs* invoices (0 ms VTEX)."""
    driver = Path(__file__).with_name("metrics_driver.py")
    done = subprocess.run(
        [sys.executable, str(driver), str(jobs)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def cpu_compare(baseline: str, jobs: int, rounds: int) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        old = Path(folder) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            on: list[float] = []
            off: list[float] = []
            for _ in range(rounds):
                off.append(worker_cpu(old, jobs))
                on.append(worker_cpu(ROOT, jobs))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False
            )
    a, b = statistics.median(on), statistics.median(off)

    def ms(values: list[float]) -> str:
        return ", ".join(f"{x * 1000:.3f}" for x in values)

    return [
        "| worker CPU per job (0 ms, threads 8) | median of rounds | rounds |",
        "|---|---|---|",
        f"| without metrics ({baseline}) | {b * 1000:.3f} ms | {ms(off)} |",
        f"| with metrics (this tree) | {a * 1000:.3f} ms | {ms(on)} |",
        f"| difference | {100 * (a / b - 1):+.1f}% | |",
        "",
        f"Without metrics is the code at {baseline}, the last commit before them: the difference "
        "also holds every change to a worker's path since, so it no longer isolates what the "
        "metrics cost.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--delivered", type=int, default=3_000, help="jobs per CPU round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lines = ["# What the metrics cost", ""]
    lines += [
        f"`python -m bench.metrics_cost`, {time.strftime('%Y-%m-%d')}, {psutil.cpu_count()} CPUs.",
        "",
    ]
    lines += ["## One scrape", "", *scrape_cost(args.accounts, args.jobs), ""]
    lines += ["## Worker CPU per job", "", *cpu_compare(args.baseline, args.delivered, args.rounds)]
    text = "\n".join(lines) + "\n"
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
