"""Per-order ordering and the invoice ledgers, kept in Redis, changed only by Lua scripts.

Guarantees (see docs/delivery.md for the states and why each crash point is safe):

- Jobs of one (account, orderId) run one at a time, in enqueue order: only an order's head
  job ever has a Celery message; the next job gets its turn from the script that finishes
  the head. Different orders never wait on each other.
- Accounts share the workers fairly: an account's jobs whose turn has come wait in its line
  in Redis, and at most ``window`` of them have a message in the Celery queue at once (a
  rate-limited or paused account's, only when it may send); see ``common.lua``, ``pump``.
- Each invoice number is one invoice, and under the ``single`` policy an order has one Output
  invoice (unless an operator discarded it): a different one is refused at enqueue, the
  identical one, like any identical job, answers with the first job's id.
- Every state change is one script, so a crash of a producer, a worker or Redis between two
  calls leaves a state that the next call (or the sweep) carries on from.
"""

from typing import Any, Literal, NamedTuple

import redis
from pydantic_core import to_json

from vtex_relay.store.combining import Combiner
from vtex_relay.store.enqueuing import Enqueuing
from vtex_relay.store.keys import (
    ACKS,
    CLAIMED,
    DEAD,
    DELAYED,
    DISCARDED,
    LEASES,
    READY,
    OrderRef,
    text,
)
from vtex_relay.store.messages import QUEUE
from vtex_relay.store.scripts import function


class Claim(NamedTuple):
    """``run``: this worker holds the job (``uncertain``: an earlier try may have landed).

    ``hold``: seconds to wait before the call, for the job's rate-limit slot (at most one).
    ``wait``: the account's rate limit or a 429 pause said not yet; the job is ``throttled``:
    it waits in Redis ``wait`` seconds (no try counted). ``busy``/``stale``: a duplicate
    message, to drop.
    """

    verdict: Literal["run", "wait", "busy", "stale"]
    seq: int = 0
    tries: int = 0
    uncertain: bool = False
    wait: float = 0.0
    hold: float = 0.0
    # Asked for (``checks_total``): the order's invoices the relay has delivered but this job's, by
    # number: (type, value in cents). VTEX's GET order may not show them yet.
    posted: dict[str, tuple[str, int]] | None = None


# What happens after a try: the job is done (the order moves on), retried later, or dead.
Decision = Literal["done", "retry", "dead"]


class Swept(NamedTuple):
    """What one sweep did: retries due, throttled jobs released (their rate-limit slot or the
    account's pause is near: not a retry, no try counted), jobs recovered from expired leases,
    lost messages replaced; and in how many seconds an account's line is next due (None:
    none is waiting on its rate or a pause)."""

    retried: int
    released: int
    recovered: int
    replaced: int
    next_due: float | None = None


# The most messages one account may have in the Celery queue (``DISPATCH_WINDOW``).
DEFAULT_WINDOW = 32


class Ordering(Enqueuing):
    """The scripts, bound to one Redis client (thread-safe: redis-py pools connections)."""

    def __init__(
        self,
        client: "redis.Redis",
        queue: str = QUEUE,
        window: int = DEFAULT_WINDOW,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
        wait_aof: bool = False,
    ) -> None:
        self.client = client
        self.queue = queue
        self.window = window
        # Durable acknowledgement (ENQUEUE_WAIT_*): after the scripts, on the same connection,
        # one write (so that the replicas which have it have everything written before it,
        # an identical job's first enqueue included), then WAIT (and WAITAOF).
        self.confirming: list[list[Any]] = []
        if wait_replicas or wait_aof:
            self.confirming.append(["INCR", ACKS])
        if wait_replicas:
            self.confirming.append(["WAIT", wait_replicas, wait_timeout_ms])
        if wait_aof:
            self.confirming.append(["WAITAOF", 1, 0, wait_timeout_ms])
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._enqueue = function(client, "enqueue")
        self._claim = function(client, "claim")
        self._finish = function(client, "finish")
        self._sweep = function(client, "sweep")
        self._resolve = function(client, "resolve")
        # A worker's threads claim and finish at once: their calls share round trips.
        self._combiner = Combiner(client)

    def confirm(self) -> str | None:
        """Wait until what was written so far (a worker's claim) is on the replicas the
        settings ask for; why not, or None once it is (at once when none are asked)."""
        if not self.confirming:
            return None
        with self.client.pipeline(transaction=False) as pipe:
            for command in self.confirming:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return self._unconfirmed(pipe.execute(raise_on_error=False))

    def claim(
        self,
        ref: OrderRef,
        job_id: str,
        token: str,
        lease_seconds: float,
        rate: float = 0.0,
        burst: float = 0.0,
        checks_total: bool = False,
    ) -> Claim:
        """Take the job for *token* with a lease, if it is ready (or its lease ran out) and
        the account's rate limit (*rate* per second, bursts of *burst*; 0: none) allows the
        try's requests. A try that *checks_total* makes two (GET order, then the POST), and
        its claim also says what the relay has delivered of the order's invoices
        (``posted``), in the same round trip: the order-total check counts them."""
        reply = self._combiner.call(
            self._claim,
            keys=[
                ref.job_key(job_id),
                LEASES,
                DELAYED,
                ref.account_key("rate"),
                ref.account_key("pause"),
                READY,
                CLAIMED,
                self.queue,
                ref.key("invoices"),
            ],
            args=[
                ref.member(job_id),
                token,
                lease_seconds,
                rate,
                burst,
                self.window,
                2 if checks_total else 1,
                _flag(checks_total),
            ],
        )
        verdict = text(reply[0])
        if verdict == "run":
            entries = [text(part) for part in reply[5:]]
            posted = {
                number: (flow, int(value))
                for number, flow, value in zip(
                    entries[0::3], entries[1::3], entries[2::3], strict=True
                )
            }
            return Claim(
                "run",
                int(reply[1]),
                int(reply[2]),
                text(reply[3]) == "1",
                hold=float(text(reply[4])),
                posted=posted if checks_total else None,
            )
        if verdict == "wait":
            return Claim("wait", wait=float(text(reply[1])))
        return Claim("busy" if verdict == "busy" else "stale")

    def finish(
        self,
        ref: OrderRef,
        job_id: str,
        token: str,
        decision: Decision,
        attempt: str,
        *,
        delay: float = 0.0,
        uncertain: bool = False,
        retention_seconds: int,
        pause_account: float = 0.0,
        seen: str = "",
        kind: str = "",
        result: str = "",
        reconciled: str = "",
        durations: str = "",
    ) -> bool:
        """Record *attempt* and apply *decision*; False if the lease was lost meanwhile.

        *pause_account* > 0 (a 429's Retry-After) makes every job of the account wait that long.
        *seen*: the order as the try's GET read it (JSON), kept on the order for operators.
        *kind*, *result*, *reconciled* and *durations* are counted for the metrics
        (``vtex_relay.ops.metrics``; ``lua/finish.lua`` says their form).
        """
        reply = self._combiner.call(
            self._finish,
            keys=[
                ref.job_key(job_id),
                ref.attempts_key(job_id),
                LEASES,
                DELAYED,
                DEAD,
                self.queue,
                ref.account_key("pause"),
                ref.key("seen"),
            ],
            args=[
                ref.tag,
                job_id,
                ref.member(job_id),
                token,
                decision,
                delay,
                _flag(uncertain),
                retention_seconds,
                pause_account,
                self.window,
                kind,
                result,
                reconciled,
                durations,
                attempt,
                seen,
            ],
        )
        return text(reply) == "ok"

    def sweep(self, lost_after: float, limit: int = 2000, worker: str = "") -> "Swept":
        """Give their turn back to due retries and throttled jobs whose slot is near, recover
        expired leases, pump the accounts' lines that are due, and replace the messages of
        jobs out for over *lost_after* seconds that are no longer in the queue. Records that
        a sweep ran and, if *worker* names one, that worker's heartbeat."""
        reply = self._sweep(
            keys=[DELAYED, LEASES, self.queue, READY, CLAIMED],
            args=[_named(limit=limit, lost_after=lost_after, window=self.window, worker=worker)],
        )
        next_due = float(text(reply[4]))
        retried, released, recovered, replaced = (int(n) for n in reply[:4])
        return Swept(retried, released, recovered, replaced, next_due if next_due >= 0 else None)

    def resolve(
        self, ref: OrderRef, job_id: str, action: Literal["replay", "discard"]
    ) -> str | None:
        """Replay or discard a dead job; None if done, else the job's actual state."""
        reply = self._resolve(
            keys=[ref.job_key(job_id), DEAD, DISCARDED, self.queue],
            args=[_named(ref=ref.tag, job_id=job_id, action=action, window=self.window)],
        )
        return None if text(reply) == "ok" else text(reply[1])


def _named(**args: Any) -> str:
    """A script's named arguments, as its first ``ARGV`` (JSON; the script's header lists them).
    The calls of every job (claim, finish) pass theirs in order instead: cheaper for Redis."""
    return to_json(args).decode()


def _flag(value: bool) -> str:
    """A yes/no argument of a positional call: "1" or ""."""
    return "1" if value else ""
