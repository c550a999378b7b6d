"""The sandbox's memory of orders, with VTEX OMS semantics (its request log: ``requests.py``).

Pure Python, no I/O. Everything runs on the server's single event-loop thread, and every
method here completes without awaiting, so a request's effect is applied atomically.
Orders are keyed by (account, orderId) and created on first use.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WRITE_KINDS = ("invoice", "tracking_number", "tracking")


class OmsRefusal(Exception):
    """An OMS call refused on its merits (unknown invoice, ...): answer ``status``, ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    """Current UTC time as ISO 8601 with offset, the way OMS writes dates."""
    return datetime.now(UTC).isoformat()


@dataclass(slots=True)
class Order:
    """One order; ``packages`` maps invoiceNumber to the package as GET order shows it."""

    account: str
    order_id: str
    value: Any  # VTEX's is an integer of cents; a seeded order may have any JSON (a bad total)
    status: str
    items: list[dict[str, Any]]
    creation_date: str = field(default_factory=now_iso)
    invoiced_date: str | None = None
    last_change: str = field(default_factory=now_iso)
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # How many times each write was applied; lets tests check "exactly one invoice applied".
    writes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITE_KINDS, 0))
    invoice_posts: dict[str, int] = field(default_factory=dict)
    posted_at: dict[str, float] = field(default_factory=dict)  # invoice number -> monotonic

    def to_vtex(self, hide_newer_than: float = 0.0) -> dict[str, Any]:
        """The order as ``GET /api/oms/pvt/orders/{orderId}`` shows it (the fields that matter);
        an invoice posted less than *hide_newer_than* seconds ago is not shown yet, as VTEX's
        GET may lag its POST."""
        shown_before = time.monotonic() - hide_newer_than
        packages = [
            package
            for number, package in self.packages.items()
            if not hide_newer_than or self.posted_at.get(number, 0.0) <= shown_before
        ]
        return {
            "orderId": self.order_id,
            "sequence": self.order_id.split("-", 1)[0],
            "status": self.status,
            "value": self.value,
            "totals": [
                {"id": "Items", "name": "Total dos Itens", "value": self.value},
                {"id": "Discounts", "name": "Total dos Descontos", "value": 0},
                {"id": "Shipping", "name": "Total do Frete", "value": 0},
                {"id": "Tax", "name": "Total da Taxa", "value": 0},
            ],
            "items": self.items,
            "creationDate": self.creation_date,
            "lastChange": self.last_change,
            "invoicedDate": self.invoiced_date,
            "isCompleted": True,
            "allowCancellation": self.status != "invoiced" and not self.packages,
            "workflowIsInError": False,
            "packageAttachment": {"packages": packages},
        }

    def to_control(self) -> dict[str, Any]:
        """The VTEX view plus the sandbox's counters, for ``GET /_sandbox/orders/{orderId}``."""
        return {
            "account": self.account,
            "order": self.to_vtex(),
            "writes": dict(self.writes),
            "invoicePosts": dict(self.invoice_posts),
        }


def _receipt(order: Order) -> dict[str, Any]:
    return {"date": now_iso(), "orderId": order.order_id, "receipt": uuid.uuid4().hex}


class Orders:
    """All orders, created on first use with ``status`` "handling" and ``default_value``."""

    def __init__(self, default_value: int) -> None:
        self.default_value = default_value
        self._orders: dict[tuple[str, str], Order] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def get(self, account: str, order_id: str, *, create: bool = True) -> Order | None:
        """The order, created on first use unless ``create`` is false."""
        order = self._orders.get((account, order_id))
        if order is None and create:
            order = Order(account, order_id, self.default_value, "handling", [])
            self._orders[(account, order_id)] = order
        return order

    def seed(
        self,
        account: str,
        order_id: str,
        *,
        value: Any,
        status: str = "handling",
        items: list[dict[str, Any]] | None = None,
    ) -> Order:
        """Create or replace an order (no packages, no counted writes)."""
        order = Order(account, order_id, value, status, list(items or []))
        self._orders[(account, order_id)] = order
        return order

    def clear(self) -> None:
        """Forget every order."""
        self._orders.clear()

    def post_invoice(self, order: Order, body: dict[str, Any]) -> dict[str, Any]:
        """Record an invoice (a validated POST body) as a package; return the receipt.

        A number posted before only gets a new receipt, as in VTEX (since 2023): nothing of
        the invoice changes. The order becomes "invoiced" once its Output invoices add up to its
        value, and then stays so.
        """
        number = body["invoiceNumber"]
        if number in order.packages:
            order.writes["invoice"] += 1
            order.invoice_posts[number] += 1
            return _receipt(order)
        skus = {item.get("id"): index for index, item in enumerate(order.items)}
        package: dict[str, Any] = {
            "courier": None,
            "trackingNumber": None,
            "trackingUrl": None,
            "dispatchedDate": None,
            "invoiceKey": None,
            "invoiceUrl": None,
            "embeddedInvoice": None,
            **body,
            "invoiceValue": int(body["invoiceValue"]),
            "items": [
                {"itemIndex": skus.get(item["id"]), "unitMultiplier": 1.0, **item}
                for item in body["items"]
            ],
            "courierStatus": None,
            "cfop": None,
            "volumes": None,
            "EnableInferItems": False,
        }
        order.packages[number] = package
        order.posted_at[number] = time.monotonic()
        order.writes["invoice"] += 1
        order.invoice_posts[number] = order.invoice_posts.get(number, 0) + 1
        order.last_change = now_iso()
        invoiced = sum(p["invoiceValue"] for p in order.packages.values() if p["type"] == "Output")
        total = order.value if isinstance(order.value, int) else None
        if order.status not in ("invoiced", "canceled") and total is not None and invoiced >= total:
            order.status = "invoiced"
            order.invoiced_date = order.last_change
        return _receipt(order)

    def update(
        self, schema: str, order: Order, invoice_number: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply an update of an invoice, named by its request schema (``Operation.schema``)."""
        apply = {"tracking_number": self.patch_tracking_number, "tracking": self.put_tracking}
        return apply[schema](order, invoice_number, body)

    def patch_tracking_number(
        self, order: Order, invoice_number: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Set the tracking fields the body carries on an existing invoice; return the receipt."""
        package = _package(order, invoice_number)
        for key in ("trackingNumber", "trackingUrl", "courier", "dispatchedDate"):
            if key in body:
                package[key] = body[key]
        order.writes["tracking_number"] += 1
        order.last_change = now_iso()
        return _receipt(order)

    def put_tracking(
        self, order: Order, invoice_number: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Append tracking events to an invoice that already has a tracking number."""
        package = _package(order, invoice_number)
        if not package.get("trackingNumber"):
            raise OmsRefusal(
                400,
                f"Invoice {invoice_number} has no tracking number; "
                "send it with PATCH /invoice/{invoiceNumber} first",
            )
        now = now_iso()
        status = package["courierStatus"] or {"status": "ok", "data": []}
        status["finished"] = body["isDelivered"]
        if "deliveredDate" in body:
            status["deliveredDate"] = body["deliveredDate"]
        status.setdefault("deliveredDate", None)
        status["data"].extend(
            {
                "lastChange": event["date"],
                "city": event["city"],
                "state": event["state"],
                "description": event["description"],
                "createDate": now,
            }
            for event in body["events"]
        )
        package["courierStatus"] = status
        order.writes["tracking"] += 1
        order.last_change = now
        return _receipt(order)


def _package(order: Order, invoice_number: str) -> dict[str, Any]:
    package = order.packages.get(invoice_number)
    if package is None:
        raise OmsRefusal(404, "Invoice Not Found")
    return package
