"""The three VTEX calls a job makes, in one table; everything that differs between job kinds.

=================  ======  ==============================================  ==================
kind               method  path                                            body model
=================  ======  ==============================================  ==================
invoice            POST    /api/oms/pvt/orders/{orderId}/invoice            ``Invoice``
tracking-number    PATCH   /api/oms/pvt/orders/{orderId}/invoice/{number}   ``TrackingNumber``
tracking           PUT     .../invoice/{invoiceNumber}/tracking             ``TrackingUpdate``
=================  ======  ==============================================  ==================

Each row also says what VTEX's GET order (``ORDER_PATH``) shows once the call has landed
(``landed``: the reconciliation before any second send), whether the call posts a new invoice
(the invoice ledger, the one-invoice rule, the order-total check), whether it gives its
invoice a tracking number, and whether VTEX wants that tracking number first. The producer,
the delivery, the reconciliation, the intake's routes, the sandbox and the OpenAPI document
read this table; no other module branches on a job's kind.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vtex_relay.models import Body, Invoice, Kind, TrackingNumber, TrackingUpdate, validate

ORDER_PATH = "/api/oms/pvt/orders/{orderId}"
Package = Mapping[str, Any]  # one of GET order's packageAttachment.packages
Sent = Mapping[str, Any]  # a job's body, as VTEX gets it


@dataclass(frozen=True)
class Operation:
    kind: Kind
    method: str
    path: str  # a template: {orderId}, and {invoiceNumber} when it updates an invoice
    model: type[Body]
    schema: str  # its request schema's name in VTEX's spec (the sandbox validates with it)
    summary: str
    operation_id: str  # its operationId in the intake's OpenAPI document (intake/openapi.py)
    posts_invoice: bool  # a new invoice: its number comes from the body, not the path
    needs_tracking_number: bool  # VTEX says not to send it before the invoice's tracking number
    gives_tracking_number: Callable[[Sent], bool]
    landed: Callable[[Package, Sent], bool]  # does the invoice's package show the call?

    @property
    def needs_invoice_number(self) -> bool:
        """The call names its invoice in the path (an update of an invoice VTEX has)."""
        return "{invoiceNumber}" in self.path

    def url_path(self, order_id: str, invoice_number: str | None) -> str:
        """The call's path for checked identifiers (``vtex_relay.identifiers``)."""
        return self.path.format(orderId=order_id, invoiceNumber=invoice_number)


def _tracking_number_shown(package: Package, body: Sent) -> bool:
    fields = ("trackingNumber", "trackingUrl", "courier")
    return all(package.get(f) == body[f] for f in fields if body.get(f) is not None)


def _events_shown(package: Package, body: Sent) -> bool:
    status = package.get("courierStatus") or {}
    seen = {(e.get("city"), e.get("state"), e.get("description")) for e in status.get("data") or []}
    events = [(e["city"], e["state"], e["description"]) for e in body["events"]]
    if body["isDelivered"] and not status.get("finished"):
        return False
    # With no events and no delivery flag there is nothing to recognise: send again (a PUT
    # of no events changes nothing).
    return bool(events or body["isDelivered"]) and all(event in seen for event in events)


OPERATIONS: dict[Kind, Operation] = {
    op.kind: op
    for op in (
        Operation(
            kind="invoice",
            method="POST",
            path=ORDER_PATH + "/invoice",
            model=Invoice,
            schema="invoice",
            summary="Order invoice notification",
            operation_id="InvoiceNotification",
            posts_invoice=True,
            needs_tracking_number=False,
            gives_tracking_number=lambda body: bool(body.get("trackingNumber")),
            landed=lambda _package, _body: True,  # the package exists: VTEX has the invoice
        ),
        Operation(
            kind="tracking-number",
            method="PATCH",
            path=ORDER_PATH + "/invoice/{invoiceNumber}",
            model=TrackingNumber,
            schema="tracking_number",
            summary="Update order's partial invoice (send tracking number)",
            operation_id="UpdatePartialInvoice",
            posts_invoice=False,
            needs_tracking_number=False,
            gives_tracking_number=lambda _body: True,
            landed=_tracking_number_shown,
        ),
        Operation(
            kind="tracking",
            method="PUT",
            path=ORDER_PATH + "/invoice/{invoiceNumber}/tracking",
            model=TrackingUpdate,
            schema="tracking",
            summary="Update order tracking status",
            operation_id="UpdateTrackingStatus",
            posts_invoice=False,
            needs_tracking_number=True,
            gives_tracking_number=lambda _body: False,
            landed=_events_shown,
        ),
    )
}


def operation(kind: Kind) -> Operation:
    return OPERATIONS[kind]


def validate_body(kind: Kind, data: object) -> dict[str, Any]:
    """Validate *data* as the body of a *kind* job and return the JSON to send VTEX; raises
    ``InvalidJob`` naming the bad fields (``body.items.0.price: ...``)."""
    return validate(OPERATIONS[kind].model, data)
