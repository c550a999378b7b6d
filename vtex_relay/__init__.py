"""vtex-relay: deliver invoices and tracking from a seller's ERP to VTEX OMS, in order, once.

The producer API: ``enqueue_invoice``, ``enqueue_tracking_number``, ``enqueue_tracking``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vtex_relay.producer import enqueue_invoice, enqueue_tracking, enqueue_tracking_number

__all__ = ["enqueue_invoice", "enqueue_tracking", "enqueue_tracking_number"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``config`` imports submodules of this package, and the producer
    # imports ``config``; an eager import here would make that a cycle.
    if name in __all__:
        from vtex_relay import producer

        return getattr(producer, name)
    raise AttributeError(f"module 'vtex_relay' has no attribute {name!r}")
