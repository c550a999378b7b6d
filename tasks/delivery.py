"""The three delivery tasks: ``invoice``, ``tracking-number`` and ``tracking``.

Each runs one try of its job through ``vtex_relay.deliver.attempt.run`` (claim, call or reconcile,
decide, record: see there) with this process's OMS client, ordering scripts, settings and
redactor. Celery acknowledged the message as the task started; the task's end only tells
Flower what happened: SUCCESS, RETRY (with when) or FAILURE.
"""

import threading
from typing import Any

from celery.exceptions import Retry
from celery.signals import worker_process_shutdown
from celery.utils.log import get_task_logger

from config import get_settings
from vtex_relay.deliver.attempt import run
from vtex_relay.deliver.oms import OmsClient
from vtex_relay.errors import JobDead, RetryableError
from vtex_relay.jobs import Job
from vtex_relay.models import Kind
from vtex_relay.store.connections import ordering
from worker.app import app, redact

log = get_task_logger(__name__)

_client: OmsClient | None = None
_client_lock = threading.Lock()


def oms_client() -> OmsClient:
    """The process's one OMS client, made on first use (after the pool forks or starts)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = OmsClient(get_settings())
        return _client


@worker_process_shutdown.connect
def _close_client(**_: Any) -> None:
    if _client is not None:
        _client.close()


def run_job(job: Job) -> str:
    """Try *job* once; return the outcome in a line (Flower's result).

    A try that ends the job dead raises ``JobDead`` and one to be retried raises Celery's
    ``Retry`` (with when), so Flower shows them as FAILURE and RETRY; neither makes Celery
    run or publish anything again: the ordering state in Redis decides what runs next.
    """
    result = run(
        job,
        client=oms_client(),
        ordering=ordering(),
        settings=get_settings(),
        redact=redact,
        logger=log,
    )
    if result.ending == "retry":
        # Flower shows the repr of Retry.exc: VTEX's answer and when the next try is due.
        raise Retry(exc=RetryableError(result.text), when=result.when)
    if result.ending == "dead":
        raise JobDead(result.text)
    return result.text


def _run(kind: Kind, message: dict[str, Any]) -> str:
    return run_job(Job.model_validate({**message, "kind": kind}))


# JobDead is expected: Celery records the failure without logging a traceback.
@app.task(name="invoice", throws=(JobDead,))
def invoice(**message: Any) -> str:
    """POST the invoice of one order."""
    return _run("invoice", message)


@app.task(name="tracking-number", throws=(JobDead,))
def tracking_number(**message: Any) -> str:
    """PATCH an invoice with its tracking number, courier and dispatch date."""
    return _run("tracking-number", message)


@app.task(name="tracking", throws=(JobDead,))
def tracking(**message: Any) -> str:
    """PUT tracking events of an invoice (sent many times, until delivered)."""
    return _run("tracking", message)
