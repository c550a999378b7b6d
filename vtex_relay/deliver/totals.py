"""Would this invoice leave the order wrong? Checked against GET order before each POST.

VTEX marks an order invoiced when its Output invoices add up to its total (``value`` in GET
order), and refunds a return (an Input invoice) only once the order is fully invoiced. A
posted invoice cannot be changed, so an invoice that would leave the order wrong is not sent:
its job is dead-lettered at once with both figures, for an operator to fix and enqueue again,
or discard. ``VERIFY_ORDER_TOTAL=false`` turns the check off.

What is already invoiced counts every invoice VTEX shows and every one the relay itself has
delivered for the order (its ledger), each invoice number once: VTEX's GET may lag its POST by
seconds, and partial invoices sent in that gap must still add up. A total that cannot be read
as a whole number of cents is no reason to send: the try is retried (VTEX may answer better)
and the job ends dead, "cannot verify the order total", never POSTed on a guess.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from vtex_relay.errors import RetryableError
from vtex_relay.models import InvoicePolicy

# Invoices by number: (type, "Output" or "Input"; value in cents).
Invoices = Mapping[str, tuple[str, int]]


def total_problem(
    order: dict[str, Any],
    body: dict[str, Any],
    policy: InvoicePolicy,
    posted: Invoices | None = None,
) -> str | None:
    """Why POSTing invoice *body* would leave *order* wrong under *policy*, or None.

    *posted*: the order's invoices the relay has delivered (its ledger). The invoice's own
    number, if VTEX shows it already (an earlier try landed), is not counted twice. Raises
    ``RetryableError`` ("cannot verify the order total") when the order's total or the
    invoice's value is not a whole number of cents.
    """
    total, value = order.get("value"), str(body.get("invoiceValue", ""))
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        what = type(total).__name__ if total is not None else "missing"
        raise RetryableError(
            f"cannot verify the order total: GET order's value is {what}, not a whole "
            "number of cents (VERIFY_ORDER_TOTAL)"
        )
    if not value.isdigit():
        raise RetryableError("cannot verify the order total: the invoice's value is not cents")
    amount = int(value)
    outputs, inputs = _sums({**(posted or {}), **shown(order)}, body.get("invoiceNumber"))
    if body.get("type") == "Input":
        if outputs < total:
            return (
                f"return {amount} for an order invoiced {outputs} of {total}: VTEX refunds only "
                "a fully invoiced order"
            )
        if inputs + amount > outputs:
            return f"returns {inputs} + {amount} > invoiced {outputs}"
        return None
    if policy == "single" and amount != total:
        return f"invoice {amount} != order total {total}"
    if outputs + amount > total:
        return f"invoices {outputs} + {amount} > order total {total}"
    return None


def order_view(order: dict[str, Any]) -> dict[str, Any]:
    """What an operator needs of a GET order: its status, total, invoiced and returned sums,
    and when it was read (``vtex-relay order`` shows it)."""
    outputs, inputs = _sums(shown(order), None)
    return {
        "status": order.get("status"),
        "value": order.get("value"),
        "invoiced": outputs,
        "returned": inputs,
        "readAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def shown(order: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """The invoices VTEX shows on *order*, by number (those with a type and a value in cents)."""
    found: dict[str, tuple[str, int]] = {}
    for package in (order.get("packageAttachment") or {}).get("packages") or []:
        if not isinstance(package, dict):
            continue
        value, flow = str(package.get("invoiceValue", "")), package.get("type")
        if flow in ("Output", "Input") and value.isdigit():
            found[str(package.get("invoiceNumber"))] = (flow, int(value))
    return found


def _sums(invoices: Invoices, number: object) -> tuple[int, int]:
    """The Output and Input sums of *invoices*, in cents, but invoice *number*."""
    sums = {"Output": 0, "Input": 0}
    for key, (kind, value) in invoices.items():
        if key != number:
            sums[kind] += value
    return sums["Output"], sums["Input"]
