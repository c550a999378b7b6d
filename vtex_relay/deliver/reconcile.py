"""Did an earlier try of a job land at VTEX? Asked before any second send.

When a try's outcome is unknown (time-out, dropped connection, a worker that died mid-call),
VTEX may have applied it. Sending an invoice POST again would overwrite the invoice, so the
next try first reads the order (GET order) and treats the job as done if VTEX shows it.
"""

from typing import Any

from vtex_relay.deliver.oms import OmsClient
from vtex_relay.jobs import Job


def landed(client: OmsClient, job: Job, *, send_by: float | None = None) -> bool:
    """True if VTEX's order shows *job*'s effect. Raises ``OmsError`` if the GET fails and
    ``LeaseExpired`` if it was not sent by *send_by* (see ``OmsClient``)."""
    return shows(client.get_order(job.account, job.order_id, send_by=send_by), job)


def shows(order: dict[str, Any], job: Job) -> bool:
    """True if *order*, as GET order returned it, shows *job*'s effect."""
    package = _package(order, job.invoice_number)
    if package is None:
        return False
    if job.kind == "invoice":
        return True
    if job.kind == "tracking-number":
        return all(
            package.get(field) == job.body[field]
            for field in ("trackingNumber", "trackingUrl", "courier")
            if job.body.get(field) is not None
        )
    return _tracking_landed(package, job.body)


def _package(order: dict[str, Any], invoice_number: str | None) -> dict[str, Any] | None:
    attachment = order.get("packageAttachment") or {}
    for package in attachment.get("packages") or []:
        if isinstance(package, dict) and package.get("invoiceNumber") == invoice_number:
            return package
    return None


def _tracking_landed(package: dict[str, Any], body: dict[str, Any]) -> bool:
    status = package.get("courierStatus") or {}
    seen = {(e.get("city"), e.get("state"), e.get("description")) for e in status.get("data") or []}
    events = [(e["city"], e["state"], e["description"]) for e in body["events"]]
    if body["isDelivered"] and not status.get("finished"):
        return False
    # With no events and no delivery flag there is nothing to recognise: send again (a PUT
    # of no events changes nothing).
    return bool(events or body["isDelivered"]) and all(event in seen for event in events)
