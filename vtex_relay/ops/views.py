"""Jobs and orders as JSON: ``vtex-relay dlq show --json`` and ``order --json``, and the intake's
``GET /relay/jobs/{jobId}`` and ``GET /relay/orders/{orderId}``: one shape for both. Times are
ISO 8601 in UTC."""

from datetime import UTC, datetime
from typing import Any

from vtex_relay.jobs import Attempt
from vtex_relay.ops import dead_letters
from vtex_relay.ops.dead_letters import JobRecord
from vtex_relay.store.keys import OrderRef


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def order_json(ref: OrderRef, status: dead_letters.OrderStatus) -> dict[str, Any]:
    """The ``order --json`` view (also the intake's ``GET /relay/orders/{orderId}``)."""
    return {
        "account": ref.account,
        "orderId": ref.order_id,
        "state": status.state,
        "head": status.head or None,
        "jobs": [job_json(j, attempts=True) for j in status.jobs],
        "invoices": [
            {
                "invoiceNumber": i.number,
                "type": i.type,
                "invoiceValue": i.value,
                "state": i.state,
                "jobId": i.job_id,
            }
            for i in status.invoices
        ],
        "vtex": status.vtex,
    }


def job_json(job: JobRecord, *, body: bool = False, attempts: bool = False) -> dict[str, Any]:
    """A job as ``dlq show --json`` shows it."""
    data: dict[str, Any] = {
        "jobId": job.job_id,
        "account": job.account,
        "orderId": job.order_id,
        "kind": job.kind,
        "seq": job.seq,
        "state": job.state,
        "invoiceNumber": job.invoice_number,
        "tries": job.tries,
        "dueAt": iso(job.due_at),
        "enqueuedAt": iso(job.enqueued_at),
        "lastError": _attempt_json(job.last_error, brief=True) if job.last_error else None,
    }
    if body:
        data["body"] = job.body
    if attempts:
        data["attempts"] = [_attempt_json(attempt) for attempt in job.attempts]
    return data


def _attempt_json(attempt: Attempt, *, brief: bool = False) -> dict[str, Any]:
    data = {
        "at": iso(attempt.at),
        "outcome": attempt.outcome,
        "status": attempt.status,
        "message": attempt.message,
    }
    if brief:
        return data
    return {**data, "maybeApplied": attempt.maybe_applied, "worker": attempt.worker}
