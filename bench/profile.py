"""``python -m bench.profile``: where a worker's CPU goes, under load: ``bench/profile.md``.

One worker process of two (threads 64, as in the Procfile) is sampled by py-spy while the pair
drains a backlog from the sandbox at 0 ms, for vtex-relay with the order-total check off and
on, and for plain Celery with the same pool. py-spy samples only the thread holding the GIL
(``--gil``): the Python work of the process, frame by frame. Each frame's share is grouped
into the parts of a job's path (``AREAS``), per job: the process's CPU time over the window
divided by the jobs it delivered in it, split by the samples' shares.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.context import Context, Plan, info
from bench.harness import stop_workers
from bench.procstats import cpu_seconds
from bench.report import publish
from bench.systems import PLAIN_THREADS, RELAY_DEFAULT, RELAY_PROCFILE, System
from tests.harness import start_workers

# A sample counts for the first area (in this order) that one of its frames names.
AREAS = (
    ("the order-total check (GET order, its totals)", ("get_order", "total_problem", "order_view")),
    ("the VTEX call (httpx)", ("httpx/", "httpcore/", "h11/")),
    ("Redis: claim, finish (vtex-relay's scripts)", ("Ordering.claim", "Ordering.finish")),
    ("Redis: kombu's acknowledgement (plain Celery)", ("QoS.append", "QoS.ack")),
    ("logging", ("logging/",)),
    ("the task's own code", ("tasks/delivery.py", "bench/plain_celery.py")),
    ("receiving the message (kombu, JSON)", ("kombu/",)),
    ("Celery's worker (dispatch to the pool, tracing)", ("celery/",)),
)
SECONDS = 8.0


def _area(frames: list[str]) -> str:
    for name, marks in AREAS:
        if any(mark in frame for frame in frames for mark in marks):
            return name
    return "other"


def _py_spy() -> str:
    """py-spy, installed with the dev extra next to this interpreter (``make bench`` runs
    ``.venv/bin/python`` without the venv on PATH), or else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("bench.profile needs py-spy: pip install -e '.[dev]' (or py-spy)")
    return found


def profile(ctx: Context, system: System, jobs: int) -> tuple[Counter[str], float]:
    """py-spy over one of *system*'s workers while it drains *jobs*; (area counts, CPU ms per
    job of that worker over the sampled window)."""
    ctx.fresh(0)
    system.enqueue(ctx.prefix(), jobs)
    client, queue = ctx.redis(), system.queue
    client.rename(queue, f"{queue}:held")
    workers = system.workers(ctx.env, "profile")
    try:
        start_workers(workers)
        client.rename(f"{queue}:held", queue)
        time.sleep(1.0)  # past the start of the drain: the steady state is what is profiled
        pid = workers[0].pid
        with tempfile.NamedTemporaryFile(suffix=".txt") as out:
            before, posts = cpu_seconds(pid), ctx.posts_ok()
            spy = [_py_spy(), "record", "--gil", "-r", "200", "-d", f"{SECONDS:g}", "-f", "raw"]
            subprocess.run(
                [*spy, "-p", str(pid), "-o", out.name],
                check=True,
                capture_output=True,
            )
            spent, delivered = cpu_seconds(pid) - before, ctx.posts_ok() - posts
            areas: Counter[str] = Counter()
            for line in Path(out.name).read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                areas[_area(stack.split(";"))] += int(count)
        ctx.wait_applied(jobs, 600)
    finally:
        stop_workers(workers)
    # The worker is one of two: about half the sandbox's POSTs in the window are its own.
    return areas, 1000 * spent / max(delivered / len(workers), 1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("profile.md"))
    args = parser.parse_args()
    ctx = Context(Plan.make(True, 1))
    systems = [RELAY_PROCFILE, RELAY_DEFAULT, PLAIN_THREADS[-1]]
    results = {}
    try:
        ctx.setup()
        for system in systems:
            info(f"profile: {system.label}")
            results[system] = profile(ctx, system, 12_000)
        version = ctx.redis_server.version()
    finally:
        ctx.teardown()
    names = [name for name, _ in AREAS] + ["other"]
    lines = [
        "| part of a job's path | " + " | ".join(s.label for s in systems) + " |",
        "|---|" + "---|" * len(systems),
    ]
    for name in names:
        cells = []
        for system in systems:
            areas, per_job = results[system]
            share = areas[name] / max(sum(areas.values()), 1)
            cells.append(f"{share * per_job:.2f} ms ({share:.0%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [f"**{results[s][1]:.2f} ms**" for s in systems]
    lines.append("| **CPU per job, one worker process** | " + " | ".join(totals) + " |")
    about = (
        f"py-spy `--gil` at 200 Hz over {SECONDS:g} s of a drain at 0 ms (sandbox latency), "
        "one worker process of two; a part's ms = its share of the samples x the process's "
        "CPU per job (its CPU time over the window / half the POSTs the sandbox got in it). "
        "Time outside the GIL (system calls, the C parts of JSON, hiredis) is spread over "
        "the parts by their Python samples. The samples are of wall time: on a machine "
        "with no core to spare, a thread that holds the GIL while the system runs another "
        "process is sampled meanwhile, so a part's share grows with the load around it "
        "(with the check on, the sandbox answers twice the requests)."
    )
    publish(args.out, lines, about, version, "python -m bench.profile")


if __name__ == "__main__":
    main()
