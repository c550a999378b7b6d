"""Would this invoice leave the order wrong? Checked against GET order before each POST.

VTEX marks an order invoiced when its Output invoices add up to its total (``value`` in GET
order), and refunds a return (an Input invoice) only once the order is fully invoiced. A
posted invoice cannot be changed, so an invoice that would leave the order wrong is not sent:
its job is dead-lettered at once with both figures, for an operator to fix and enqueue again,
or discard. ``VERIFY_ORDER_TOTAL=false`` turns the check off.
"""

from datetime import UTC, datetime
from typing import Any

from vtex_relay.models import InvoicePolicy


def total_problem(order: dict[str, Any], body: dict[str, Any], policy: InvoicePolicy) -> str | None:
    """Why POSTing invoice *body* would leave *order* wrong under *policy*, or None.

    An order without a numeric total, or an invoice value that is not a number, is not judged.
    The invoice's own number, if VTEX shows it already (an earlier try landed), is not counted
    twice.
    """
    total, value = order.get("value"), str(body.get("invoiceValue", ""))
    if not isinstance(total, int) or isinstance(total, bool) or not value.isdigit():
        return None
    amount = int(value)
    outputs, inputs = _shown(order, body.get("invoiceNumber"))
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
    outputs, inputs = _shown(order, None)
    return {
        "status": order.get("status"),
        "value": order.get("value"),
        "invoiced": outputs,
        "returned": inputs,
        "readAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def _shown(order: dict[str, Any], number: object) -> tuple[int, int]:
    """The Output and Input invoices VTEX shows on *order*, in cents, but invoice *number*."""
    sums = {"Output": 0, "Input": 0}
    for package in (order.get("packageAttachment") or {}).get("packages") or []:
        if not isinstance(package, dict) or package.get("invoiceNumber") == number:
            continue
        value = str(package.get("invoiceValue", ""))
        if package.get("type") in sums and value.isdigit():
            sums[package["type"]] += int(value)
    return sums["Output"], sums["Input"]
