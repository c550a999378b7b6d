"""The three delivery tasks: ``invoice``, ``tracking-number`` and ``tracking``.

Each receives a job envelope (``vtex_relay.jobs.Job``) as keyword arguments and makes one call
to VTEX with the worker's own credentials. The task names are the job kinds, which is what
Flower shows.
"""

import threading
from typing import Any

from celery.signals import worker_process_shutdown
from celery.utils.log import get_task_logger

from config import get_settings
from vtex_relay.errors import PermanentError, RetryableError
from vtex_relay.jobs import Job
from vtex_relay.models import Kind, Receipt
from vtex_relay.oms_client import OmsClient
from worker.app import app

log = get_task_logger(__name__)

_client: OmsClient | None = None
_client_lock = threading.Lock()


def oms_client() -> OmsClient:
    """The process's one pooled OMS client, made on first use (after the pool forks or starts)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = OmsClient(get_settings())
        return _client


@worker_process_shutdown.connect
def _close_client(**_: Any) -> None:
    if _client is not None:
        _client.close()


def deliver(job: Job) -> Receipt:
    """Make *job*'s call to VTEX; raise ``RetryableError`` or ``PermanentError`` if it fails."""
    client = oms_client()
    try:
        if job.kind == "invoice":
            receipt = client.post_invoice(job.account, job.order_id, job.body)
        elif job.kind == "tracking-number":
            assert job.invoice_number is not None
            receipt = client.patch_tracking_number(
                job.account, job.order_id, job.invoice_number, job.body
            )
        else:
            assert job.invoice_number is not None
            receipt = client.put_tracking(job.account, job.order_id, job.invoice_number, job.body)
    except RetryableError as exc:
        log.warning("%s not delivered, may succeed later: %s", job.describe(), exc)
        raise
    except PermanentError as exc:
        log.error("%s refused by VTEX: %s", job.describe(), exc)
        raise
    log.info("%s delivered, receipt %s", job.describe(), receipt.receipt)
    return receipt


def _run(kind: Kind, message: dict[str, Any]) -> None:
    deliver(Job.model_validate({**message, "kind": kind}))


@app.task(name="invoice")
def invoice(**message: Any) -> None:
    """POST the invoice of one order."""
    _run("invoice", message)


@app.task(name="tracking-number")
def tracking_number(**message: Any) -> None:
    """PATCH an invoice with its tracking number, courier and dispatch date."""
    _run("tracking-number", message)


@app.task(name="tracking")
def tracking(**message: Any) -> None:
    """PUT tracking events of an invoice (sent many times, until delivered)."""
    _run("tracking", message)
