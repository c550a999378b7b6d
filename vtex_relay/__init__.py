"""vtex-relay: deliver invoices and tracking from a seller's ERP to VTEX OMS, in order, once.

The producer API: ``enqueue_invoice``, ``enqueue_tracking_number``, ``enqueue_tracking``, and
the errors they raise (``vtex_relay.errors`` draws their tree).
"""

from vtex_relay.errors import (
    ConfigurationError,
    FieldError,
    InvalidJob,
    InvoiceConflict,
    QueueUnavailable,
    RelayError,
)
from vtex_relay.produce.api import enqueue_invoice, enqueue_tracking, enqueue_tracking_number

__all__ = [
    "ConfigurationError",
    "FieldError",
    "InvalidJob",
    "InvoiceConflict",
    "QueueUnavailable",
    "RelayError",
    "enqueue_invoice",
    "enqueue_tracking",
    "enqueue_tracking_number",
]
