"""Frozen workers send nothing late: no second write, no write out of order.

A worker stopped with SIGSTOP (as a VM pause, a long GC or swapping stops one) for longer than
``LEASE_SECONDS`` loses its jobs to the other workers, which reconcile and send them. When it
wakes, each of its threads is somewhere between its claim and its call's answer; a thread that
had not yet sent its request must not send it now. VTEX answers slowly (seconds), so threads
spend long in reconciliation GETs before their writes: the window a late send would hit.

Real Redis, real workers, the sandbox over HTTP, no injected errors: so every applied write
must be its job's one write, in enqueue order (``tests.chaos.check_order``, which tolerates a
duplicate only after an injected fault, of which there are none here).
"""

import os
import random
import signal
import threading
import time
from collections.abc import Sequence

import redis

from tests import chaos
from tests.processes import Worker, wait_for
from vtex_relay.sandbox import SandboxControl

# conftest: VTEX_TIMEOUT=2, LEASE_SECONDS=11. A freeze outlasts the lease by seconds.
FREEZE_SECONDS = (12.5, 15.0)
LATENCY_MS = 1500


class Freezer(threading.Thread):
    """Every few seconds (seeded), SIGSTOPs a worker that is not frozen, SIGCONTs it after a
    freeze longer than the lease; at least one worker is always running."""

    def __init__(self, workers: Sequence[Worker], rng: random.Random) -> None:
        super().__init__(name="freezer", daemon=True)
        self.workers = workers
        self.rng = rng
        self.done = threading.Event()
        self.frozen: dict[int, float] = {}  # slot -> monotonic time to thaw it
        self.freezes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # Event.wait paces the freezes; it synchronises nothing.
            while not self.done.wait(0.25):
                self.thaw(expired_only=True)
                if len(self.frozen) < len(self.workers) - 1 and self.rng.random() < 0.12:
                    slot = self.rng.choice(
                        [i for i in range(len(self.workers)) if i not in self.frozen]
                    )
                    self.signal(slot, signal.SIGSTOP)
                    self.frozen[slot] = time.monotonic() + self.rng.uniform(*FREEZE_SECONDS)
                    self.freezes += 1
        except BaseException as exc:
            self.error = exc
        finally:
            self.thaw(expired_only=False)

    def thaw(self, *, expired_only: bool) -> None:
        for slot, until in list(self.frozen.items()):
            if not expired_only or time.monotonic() >= until:
                self.signal(slot, signal.SIGCONT)
                del self.frozen[slot]

    def signal(self, slot: int, sig: int) -> None:
        process = self.workers[slot].process
        assert process is not None
        process.send_signal(sig)


def test_frozen_workers_never_send_late(sandbox: SandboxControl, redis_client: redis.Redis) -> None:
    seed = chaos.seed_for("freezes")
    rng = random.Random(seed)
    orders = chaos.plan_orders(rng, 80, prefix=f"frz{seed % 10000:04d}x")
    # Time-outs (never applied: no duplicate is excused) make jobs uncertain, and an uncertain
    # job's try starts with a GET: more threads are frozen between a claim and a write.
    sandbox.set_faults(latency_ms=LATENCY_MS, rate_timeout=0.15, stall_seconds=3)
    fleet = chaos.Fleet({**os.environ})
    freezer: Freezer | None = None
    try:
        with chaos.running(fleet):
            freezer = Freezer(fleet.slots, random.Random(rng.randrange(2**32)))
            freezer.start()
            chaos.produce(orders, rng)
            # Keep freezing until every order is through and at least 6 freezes happened.
            wait_for(
                lambda: chaos.all_idle(redis_client, orders) and freezer.freezes >= 6,
                timeout=240,
                interval=0.2,
                what=lambda: chaos.stuck_report(redis_client, orders),
            )
            freezer.done.set()
            freezer.join(timeout=30)
            wait_for(
                lambda: chaos.drained(redis_client),
                timeout=40,
                what=lambda: chaos.leftovers(redis_client),
            )
            logs = fleet.logs()
    finally:
        if freezer is not None:
            freezer.done.set()
            freezer.join(timeout=30)
        sandbox.set_faults(latency_ms=0, rate_timeout=0)
    assert freezer.error is None, freezer.error

    findings, outcomes = chaos.check_orders(sandbox, redis_client, orders, sandbox.requests())
    not_sent = sum(log.count("the job's lease could run out") for log in logs)
    lost = sum(log.count("lease ran out during the call") for log in logs)
    print(
        f"[freezes] seed={seed} orders={len(orders)} jobs={sum(len(o.jobs) for o in orders)} "
        f"freezes={freezer.freezes} not-sent-after-freeze={not_sent} outcomes-lost={lost} "
        f"reconciled={outcomes['reconciled']} duplicates-and-order-violations="
        f"{len(findings.violations)}"
    )
    assert not findings.violations, f"seed {seed}: {findings.violations[:10]}"
    # The run proved something only if frozen threads woke too late to send.
    assert not_sent, f"seed {seed}: no frozen worker woke with a request still to send"
    fleet.discard_logs()
