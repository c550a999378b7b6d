"""The two systems under test: how to enqueue N jobs into each, and how to start its workers."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Literal

from bench.harness import ROOT, Worker
from bench.workload import ACCOUNT, jobs

ENQUEUE_DEADLINE = 300.0  # seconds; no enqueue loop runs longer


@dataclass(frozen=True)
class System:
    """A system and its worker configuration: *processes* workers of *pool* x *concurrency*."""

    kind: Literal["relay", "plain"]
    processes: int
    pool: Literal["threads", "prefork"]
    concurrency: int | None = None  # None: Celery's default (the number of CPUs)
    events: bool = False  # Celery task events (both default to off; Flower turns them on)
    # vtex-relay's order-total check (VERIFY_ORDER_TOTAL, on by default: a GET order before each
    # invoice POST). Off in the like-for-like rows: plain Celery's task makes the POST only.
    check: bool = False

    @property
    def slots(self) -> int:
        """Jobs that can be in flight at once over all processes."""
        return self.processes * (self.concurrency or os.cpu_count() or 1)

    @property
    def label(self) -> str:
        name = "vtex-relay" if self.kind == "relay" else "plain Celery"
        per_process = self.slots // self.processes
        conc = str(per_process) if self.concurrency is not None else f"{per_process} (default)"
        events = ", task events on" if self.events else ""
        check = ", order-total check on (the default)" if self.check else ""
        return f"{name}, {self.processes} x {self.pool} {conc}{events}{check}"

    @property
    def queue(self) -> str:
        """The Redis list the workers consume."""
        from bench.plain_celery import QUEUE as PLAIN
        from vtex_relay.store.messages import QUEUE as RELAY

        return RELAY if self.kind == "relay" else PLAIN

    def workers(self, env: dict[str, str], tag: str) -> list[Worker]:
        options = []
        if self.kind == "relay":
            app = "worker.app"  # as in the Procfile
        else:
            app = "bench.plain_celery"
            options += ["-Q", "bench-plain"]
        if self.events:
            options.append("--task-events")  # -E; vtex-relay's TASK_EVENTS=true does the same
        env = {
            **env,
            "TASK_EVENTS": "true" if self.events else "false",
            "VERIFY_ORDER_TOTAL": "true" if self.check else "false",
        }
        return [
            Worker(
                env,
                f"{tag}{i}",
                app=app,
                pool=self.pool,
                concurrency=self.concurrency,
                options=options,
                cwd=ROOT,
            )
            for i in range(self.processes)
        ]

    def enqueue(self, prefix: str, count: int) -> tuple[int, float]:
        """Enqueue *count* jobs the fast way an integrator would; return (enqueued, seconds).

        vtex-relay: ``enqueue_many`` (the batch path: validated, pipelined). Plain Celery: an
        ``apply_async`` loop.
        """
        if self.kind == "relay":
            return enqueue_relay_batch(prefix, count)
        return enqueue_plain_loop(prefix, count)


# vtex-relay as the Procfile runs it.
RELAY_PROCFILE = System("relay", 2, "threads", 64)
PLAIN_PREFORK = System("plain", 2, "prefork")
# Plain Celery's threads pool at several concurrencies: its best one is the target to beat.
PLAIN_THREADS = tuple(System("plain", 2, "threads", c) for c in (32, 48, 64))
# vtex-relay as shipped: the Procfile's workers with the order-total check on.
RELAY_DEFAULT = System("relay", 2, "threads", 64, check=True)
# As many worker processes as this machine runs usefully against the one Redis: the ceiling run.
RELAY_CEILING = System("relay", 2 * (os.cpu_count() or 1), "threads", 64)
# Both with Celery task events on, as when Flower watches (it turns them on in every worker).
WATCHED = (
    System("relay", 2, "threads", 64, events=True),
    System("plain", 2, "threads", 64, events=True),
)


def enqueue_relay_batch(prefix: str, count: int) -> tuple[int, float]:
    from vtex_relay.produce.api import build_job, enqueue_many

    started = time.perf_counter()
    results = enqueue_many(
        build_job("invoice", oid, body, account=ACCOUNT) for oid, body in jobs(prefix, count)
    )
    elapsed = time.perf_counter() - started
    enqueued = sum(1 for r in results if r.verdict == "enqueued")
    return enqueued, elapsed


def enqueue_relay_loop(prefix: str, count: int) -> tuple[int, float]:
    """The Python API one job at a time: ``enqueue_invoice`` in a loop."""
    from vtex_relay import enqueue_invoice

    started = time.perf_counter()
    deadline = started + ENQUEUE_DEADLINE
    done = 0
    for oid, body in jobs(prefix, count):
        enqueue_invoice(oid, body, account=ACCOUNT)
        done += 1
        if time.perf_counter() > deadline:
            break
    return done, time.perf_counter() - started


def enqueue_plain_loop(prefix: str, count: int) -> tuple[int, float]:
    from bench.plain_celery import post_invoice

    started = time.perf_counter()
    deadline = started + ENQUEUE_DEADLINE
    done = 0
    for oid, body in jobs(prefix, count):
        post_invoice.apply_async(kwargs={"account": ACCOUNT, "order_id": oid, "body": body})
        done += 1
        if time.perf_counter() > deadline:
            break
    return done, time.perf_counter() - started
