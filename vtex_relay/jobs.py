"""The job envelope and the record of each attempt.

A job is one call to VTEX for one order. The envelope is the task message's keyword
arguments, so Flower shows it as it is. It never holds a credential: workers read those
from their own settings. A job's place in its order (``seq``) and its attempts live in
Redis (``vtex_relay.store.ordering``), not in the message.
"""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vtex_relay.models import InvoicePolicy, Kind

# delivered: VTEX answered 2xx. reconciled: an earlier try had landed (GET order showed it),
# so nothing was sent. retryable / permanent: see vtex_relay.errors.
Outcome = Literal["delivered", "reconciled", "retryable", "permanent"]


class Attempt(BaseModel):
    """One try at a job: when, by which worker, and what VTEX (or the network) answered."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    outcome: Outcome
    status: int | None = None
    message: str = ""
    maybe_applied: bool = False
    retry_after: float | None = None
    worker: str = ""


class Job(BaseModel):
    """One validated call to make: kind, target (account, order, invoice) and the VTEX body."""

    model_config = ConfigDict(frozen=True)

    job_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    kind: Kind
    account: str
    order_id: str
    invoice_number: str | None = None
    body: dict[str, Any]
    enqueued_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Set by a producer that sends the same job again on purpose: two jobs of an order are the
    # same job when their keys are equal (else when kind, invoice number and body are).
    idempotency_key: str | None = None
    # An invoice's account policy, from the producer's settings: "single" allows one Output
    # invoice per order, "partial" any number (each number once). Checked at enqueue.
    invoice_policy: InvoicePolicy = "single"

    def message_kwargs(self) -> dict[str, Any]:
        """The task message's keyword arguments (JSON-safe); a worker needs no idempotency key."""
        return self.model_dump(mode="json", exclude={"kind", "idempotency_key", "invoice_policy"})

    def describe(self) -> str:
        """A one-line, secret-free label for logs: ``invoice account/order``."""
        target = f"{self.account}/{self.order_id}"
        if self.invoice_number is not None:
            target += f"/{self.invoice_number}"
        return f"{self.kind} {target} (job {self.job_id})"
