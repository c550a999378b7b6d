"""What makes two jobs of an order the same job, and two invoices the same invoice.

A job's identity is its producer's idempotency key if it gave one, else a hash of its kind,
invoice number and body: the enqueue script answers a job whose identity its order has
already seen with the first job's id (docs/delivery.md, "The same job once").
"""

import hashlib
import json
from typing import Any

from vtex_relay.jobs import Job


def body_digest(body: dict[str, Any]) -> str:
    """A stable fingerprint of a body, to tell an exact duplicate invoice from a different one."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint(job: Job, digest: str = "") -> str:
    """What makes two jobs of an order the same job: the producer's idempotency key if it gave
    one, else kind, invoice number and body (*digest*: the body's, if already computed)."""
    if job.idempotency_key is not None:
        return "key:" + job.idempotency_key
    content = f"{job.kind}\0{job.invoice_number or ''}\0{digest or body_digest(job.body)}"
    return hashlib.blake2b(content.encode(), digest_size=16).hexdigest()
