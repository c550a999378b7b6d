"""The three example bodies of VTEX's guide "How to create an order invoice integration",
as printed there; the repo keeps them in examples/ for `make run` too."""

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return body


SEED_INVOICE = _load("invoice")
SEED_TRACKING_NUMBER = _load("tracking-number")
SEED_TRACKING = _load("tracking")


def invoice(number: str, value: int = 100, kind: str = "Output") -> dict[str, Any]:
    """A minimal valid invoice body: one item worth *value* cents; *kind* Input for a return."""
    return {
        "type": kind,
        "issuanceDate": "2024-01-31T18:25:43-05:00",
        "invoiceNumber": number,
        "invoiceValue": str(value),
        "items": [{"id": "123", "price": value, "quantity": 1}],
    }
