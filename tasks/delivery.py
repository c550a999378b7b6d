"""The three delivery tasks: ``invoice``, ``tracking-number`` and ``tracking``.

A task message only says "this job may be ready". The task first claims the job in Redis
(a lease: the "in flight" record); a message for a job that is not ready — a duplicate
delivery, a restore after a crash — is acknowledged and dropped. Then one try:

- if an earlier try may have landed (it timed out, or its worker died), GET order first and
  count the job as done if VTEX shows it — an invoice is never POSTed twice on a guess;
- otherwise make the call;

and the outcome is recorded by one script: done (the order's next job is dispatched), retry
(waits in Redis, not in this worker, until its backoff is over), or dead (the order is held
for an operator). The task itself always returns normally, so Celery acknowledges it.
"""

import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from celery.signals import worker_process_shutdown
from celery.utils.log import get_task_logger

from config import Settings, get_settings
from vtex_relay.backoff import retry_delay
from vtex_relay.connections import ordering
from vtex_relay.errors import OmsError, PermanentError, RetryableError
from vtex_relay.jobs import Attempt, Job
from vtex_relay.models import Kind, Receipt
from vtex_relay.oms_client import OmsClient
from vtex_relay.ordering import Claim, OrderRef, Outcome
from vtex_relay.reconcile import landed
from worker.app import app

log = get_task_logger(__name__)
_HOST = socket.gethostname()

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
    if job.kind == "invoice":
        return client.post_invoice(job.account, job.order_id, job.body)
    assert job.invoice_number is not None
    if job.kind == "tracking-number":
        return client.patch_tracking_number(job.account, job.order_id, job.invoice_number, job.body)
    return client.put_tracking(job.account, job.order_id, job.invoice_number, job.body)


def run_job(job: Job) -> str:
    """Claim *job*, try it once, record the outcome; return it in a line (Flower's result)."""
    settings = get_settings()
    ref = OrderRef.of(job)
    token = f"{_HOST}:{uuid.uuid4().hex}"
    limit = settings.rate_for(job.account)
    claim = ordering().claim(
        ref, job.job_id, token, settings.lease_seconds, limit.rate, limit.burst
    )
    if claim.verdict == "wait":
        log.debug("%s: waiting %.2fs for the account's rate limit", job.describe(), claim.wait)
        return f"waiting {claim.wait:.2f}s for the account's rate limit or 429 pause"
    if claim.verdict != "run":
        log.info("%s: message dropped, the job is not ready (%s)", job.describe(), claim.verdict)
        return f"not run: the job is not ready ({claim.verdict} message)"
    if claim.hold > 0:
        time.sleep(claim.hold)  # up to a second, to go out at the job's rate-limit slot
    attempt, outcome, delay = _try(job, claim, settings)
    kept = ordering().finish(
        ref,
        job.job_id,
        token,
        outcome,
        attempt.model_dump_json(),
        delay=delay,
        uncertain=attempt.maybe_applied,
        retention_seconds=int(settings.job_retention_days * 86400),
        # A 429 is about the account, not this job: every worker holds back its jobs.
        pause_account=max(delay, attempt.retry_after or 0.0) if attempt.status == 429 else 0.0,
    )
    if not kept:
        log.warning("%s: lease ran out during the call; another worker took the job over",
                    job.describe())  # fmt: skip
        return "outcome not recorded: the lease ran out and another worker took the job over"
    if outcome == "done":
        return attempt.outcome
    status = f"HTTP {attempt.status}: " if attempt.status is not None else ""
    head = f"retry in {delay:.1f}s" if outcome == "retry" else "dead"
    return f"{head}: {status}{attempt.message}"[:300]


def _try(job: Job, claim: Claim, settings: Settings) -> tuple[Attempt, Outcome, float]:
    now = datetime.now(UTC)
    try:
        if claim.uncertain and landed(oms_client(), job):
            log.info("%s: already at VTEX (an earlier try landed), not sent again", job.describe())
            return Attempt(at=now, outcome="reconciled", worker=_HOST), "done", 0.0
        receipt = deliver(job)
    except RetryableError as exc:
        attempt = _failed(now, "retryable", exc, maybe_applied=exc.maybe_applied)
        attempt = attempt.model_copy(update={"retry_after": exc.retry_after})
        if claim.tries >= settings.retry_max_attempts:
            log.error("%s: dead after %d tries: %s", job.describe(), claim.tries, exc)
            return attempt, "dead", 0.0
        delay = retry_delay(
            claim.tries, settings.retry_backoff_base, settings.retry_backoff_max, exc.retry_after
        )
        log.warning(
            "%s: try %d failed (%s); next in %.1fs", job.describe(), claim.tries, exc, delay
        )
        return attempt, "retry", delay
    except PermanentError as exc:
        log.error("%s: refused by VTEX: %s", job.describe(), exc)
        return _failed(now, "permanent", exc), "dead", 0.0
    log.info("%s: delivered, receipt %s", job.describe(), receipt.receipt)
    message = f"receipt {receipt.receipt}" if receipt.receipt else ""
    return Attempt(at=now, outcome="delivered", message=message, worker=_HOST), "done", 0.0


def _failed(now: datetime, outcome: Any, exc: OmsError, *, maybe_applied: bool = False) -> Attempt:
    return Attempt(at=now, outcome=outcome, status=exc.status, message=exc.message,
                   maybe_applied=maybe_applied, worker=_HOST)  # fmt: skip


def _run(kind: Kind, message: dict[str, Any]) -> str:
    return run_job(Job.model_validate({**message, "kind": kind}))


@app.task(name="invoice")
def invoice(**message: Any) -> str:
    """POST the invoice of one order."""
    return _run("invoice", message)


@app.task(name="tracking-number")
def tracking_number(**message: Any) -> str:
    """PATCH an invoice with its tracking number, courier and dispatch date."""
    return _run("tracking-number", message)


@app.task(name="tracking")
def tracking(**message: Any) -> str:
    """PUT tracking events of an invoice (sent many times, until delivered)."""
    return _run("tracking", message)
