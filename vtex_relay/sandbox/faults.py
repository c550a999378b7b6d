"""Fault injection: what can go wrong, how often, and the decision for one request.

Each ``rate_*`` is a probability in [0, 1]. One uniform number is drawn per OMS request from
a seeded RNG and compared with the cumulative rates (429, 503, time-out, apply-then-drop,
apply-then-stall, in that order), so each rate is exactly the probability of its fault and
the rates together must not exceed 1. ``fail_orders`` is deterministic and wins over the
random faults; it applies to writes only.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Faults(BaseModel):
    """Fault settings; changeable at run time through ``PUT /_sandbox/faults`` (partial update)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0.0, description="added to every OMS request")
    rate_429: Probability = 0.0
    retry_after: int | None = Field(
        default=1, ge=0, description="Retry-After of a 429, seconds; null: no Retry-After"
    )
    rate_5xx: Probability = 0.0
    rate_timeout: Probability = 0.0
    rate_apply_drop: Probability = 0.0
    rate_apply_stall: Probability = 0.0
    stall_seconds: float = Field(default=10.0, ge=0.0)
    fail_orders: dict[str, int] = Field(
        default_factory=dict, description="orderId -> HTTP status answered to every write"
    )
    # VTEX as a hostile week met it: each is deterministic, and off by default.
    account_latency_ms: dict[str, float] = Field(
        default_factory=dict, description="account -> latency added to its requests instead"
    )
    invoice_lag_seconds: float = Field(
        default=0.0, ge=0.0, description="GET order shows a new invoice only this much later"
    )
    order_writes: int = Field(
        default=1, ge=1, le=100, description="GET order's body is sent in this many writes"
    )
    order_write_gap_ms: float = Field(default=50.0, ge=0.0, description="between those writes")
    set_cookies: bool = Field(
        default=False, description="every OMS answer sets a cookie naming its account"
    )
    drop_writes: list[str] = Field(
        default_factory=list,
        description="orderIds whose next write is applied and its answer lost (once each)",
    )

    @model_validator(mode="after")
    def _check(self) -> Faults:
        total = (
            self.rate_429
            + self.rate_5xx
            + self.rate_timeout
            + self.rate_apply_drop
            + self.rate_apply_stall
        )
        if total > 1.0 + 1e-9:
            raise ValueError(f"the rate_* probabilities add up to {total:g}, more than 1")
        for order_id, status in self.fail_orders.items():
            if not 400 <= status <= 599:
                raise ValueError(f"fail_orders[{order_id!r}]: status {status} is not 4xx/5xx")
        return self


class Fault(enum.Enum):
    """The fault chosen for one request; ``value`` is what the request log shows."""

    NONE = None
    THROTTLE = "429"
    UNAVAILABLE = "5xx"
    TIMEOUT = "timeout"
    APPLY_DROP = "apply_drop"
    APPLY_STALL = "apply_stall"
    FAIL_ORDER = "fail_order"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one OMS request: the fault and, for ``FAIL_ORDER``, the status."""

    fault: Fault
    fail_status: int | None = None


NO_FAULT = Decision(Fault.NONE)


def decide(faults: Faults, rng: random.Random, order_id: str | None, write: bool) -> Decision:
    """Choose the fault for one OMS request. Always draws once, so a seed replays exactly."""
    draw = rng.random()
    if write and order_id is not None and order_id in faults.fail_orders:
        return Decision(Fault.FAIL_ORDER, faults.fail_orders[order_id])
    if write and order_id is not None and order_id in faults.drop_writes:
        return Decision(Fault.APPLY_DROP)
    threshold = 0.0
    for rate, fault in (
        (faults.rate_429, Fault.THROTTLE),
        (faults.rate_5xx, Fault.UNAVAILABLE),
        (faults.rate_timeout, Fault.TIMEOUT),
        (faults.rate_apply_drop, Fault.APPLY_DROP),
        (faults.rate_apply_stall, Fault.APPLY_STALL),
    ):
        threshold += rate
        if draw < threshold:
            return Decision(fault)
    return NO_FAULT
