"""Plain Celery: what an integrator would write without vtex-relay, for comparison.

One Celery app on the same Redis (its own queue), ONE task that makes the same httpx POST to
the same sandbox with the same headers, through one pooled ``httpx.Client`` per process. No
ordering, no dedup, no retries; Celery's default settings otherwise (prefetch 4, early ack).
Settings come from the same environment variables as vtex-relay's.

    celery -A bench.plain_celery worker -Q bench-plain
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
from celery import Celery

QUEUE = "bench-plain"

app = Celery("bench_plain", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0"))
app.conf.update(task_default_queue=QUEUE, broker_connection_retry_on_startup=True)

_client: httpx.Client | None = None
_lock = threading.Lock()


def client() -> httpx.Client:
    """The process's pooled client (made after the pool forks, on first use)."""
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                    "X-VTEX-API-AppKey": os.environ["VTEX_APP_KEY"],
                    "X-VTEX-API-AppToken": os.environ["VTEX_APP_TOKEN"],
                },
                timeout=float(os.environ.get("VTEX_TIMEOUT", "10")),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
            )
        return _client


def invoice_url(account: str, order_id: str) -> str:
    base = os.environ["VTEX_BASE_URL"].format(account=account, environment="vtexcommercestable")
    return f"{base.rstrip('/')}/api/oms/pvt/orders/{order_id}/invoice"


@app.task(name="plain.post_invoice")
def post_invoice(account: str, order_id: str, body: dict[str, Any]) -> int:
    """POST the invoice *body* of *order_id*; fail (no retry) on a non-2xx answer."""
    response = client().post(invoice_url(account, order_id), json=body)
    response.raise_for_status()
    return response.status_code
