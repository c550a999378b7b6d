"""Did an earlier try of a job land at VTEX? Asked before any second send.

When a try's outcome is unknown (time-out, dropped connection, a worker that died mid-call),
VTEX may have applied it. Sending an invoice POST again would overwrite the invoice, so the
next try first reads the order (GET order) and treats the job as done if VTEX shows it.
"""

from typing import Any

from vtex_relay.jobs import Job
from vtex_relay.operations import operation


def shows(order: dict[str, Any], job: Job) -> bool:
    """True if *order*, as GET order returned it, shows *job*'s effect."""
    package = _package(order, job.invoice_number)
    return package is not None and operation(job.kind).landed(package, job.body)


def _package(order: dict[str, Any], invoice_number: str | None) -> dict[str, Any] | None:
    attachment = order.get("packageAttachment") or {}
    for package in attachment.get("packages") or []:
        if isinstance(package, dict) and package.get("invoiceNumber") == invoice_number:
            return package
    return None
