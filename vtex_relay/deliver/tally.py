"""What one try did, for the metrics: each request's operation and duration, its result, whether
it reconciled. ``finish.lua`` adds it to the counters with the try's outcome."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from vtex_relay.errors import OmsError

T = TypeVar("T")
# Upper bounds (seconds) of the VTEX request duration histogram's buckets.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Tally:
    """What one try did, for the metrics. ``result`` is its last request's: ``2xx``, ``429``,
    ``4xx``, ``5xx``, ``timeout`` or ``connection`` ("" if it made none); ``reconciled``:
    ``found`` or ``not-found`` if it read the order to reconcile."""

    durations: list[tuple[str, float]] = field(default_factory=list)
    result: str = ""
    reconciled: str = ""

    def timed(self, operation: str, call: Callable[[], T]) -> T:
        """*call*'s value, its duration kept under *operation* and its result classified."""
        started = time.monotonic()
        try:
            value = call()
        except OmsError as exc:
            self.result = result_of(exc)
            raise
        finally:
            self.durations.append((operation, time.monotonic() - started))
        self.result = "2xx"
        return value

    def encoded(self) -> str:
        """The durations as ``finish.lua`` takes them: ``OPERATION BUCKET SECONDS;...``."""
        return ";".join(f"{op} {_bucket(s)} {s:.6f}" for op, s in self.durations)


def result_of(exc: OmsError) -> str:
    status = exc.status
    if status is None:
        # No answer: the request left and none came back, or it never reached VTEX.
        return "timeout" if getattr(exc, "maybe_applied", False) else "connection"
    if status == 429:
        return "429"
    return "5xx" if status >= 500 else "4xx"


def _bucket(seconds: float) -> str:
    return next((f"{b:g}" for b in BUCKETS if seconds <= b), "+Inf")
