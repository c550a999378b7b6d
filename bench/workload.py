"""The workload: invoice POST jobs, one per distinct order, with the same body for both systems."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ACCOUNT = "benchstore"


def order_id(prefix: str, index: int) -> str:
    """A distinct order id per job (so per-order ordering never serialises two jobs)."""
    return f"{prefix}-{index:07d}-01"


ORDER_TOTAL = 10_000  # the sandbox's default total of an order it creates on first use


def invoice_body(index: int) -> dict[str, Any]:
    """An invoice body VTEX's spec (and the sandbox) accepts, with no field to normalise, for
    the whole of an order: its value is the sandbox's order total, so the order-total check
    (on by default) lets it through."""
    return {
        "type": "Output",
        "issuanceDate": "2024-01-31T18:25:43-05:00",
        "invoiceNumber": f"NF-{index}",
        "invoiceValue": str(ORDER_TOTAL),
        "items": [{"id": "123", "price": ORDER_TOTAL, "quantity": 1}],
    }


def jobs(prefix: str, count: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """(order id, body) for *count* jobs."""
    for index in range(count):
        yield order_id(prefix, index), invoice_body(index)


def write_batch(path: Path, prefix: str, count: int) -> Path:
    """A ``vtex-relay enqueue batch`` file of *count* invoice lines."""
    with path.open("w", encoding="utf-8") as out:
        for oid, body in jobs(prefix, count):
            line = {"kind": "invoice", "orderId": oid, "account": ACCOUNT, "body": body}
            out.write(json.dumps(line))
            out.write("\n")
    return path
