"""The three delivery tasks: ``invoice``, ``tracking-number`` and ``tracking``.

A task message only says "this job may be ready". The task first claims the job in Redis
(a lease: the "in flight" record); a message for a job that is not ready — a duplicate
delivery, a restore after a crash — is acknowledged and dropped. Then one try:

- if an earlier try may have landed (it timed out, or its worker died), GET order first and
  count the job as done if VTEX shows it — an invoice is never POSTed twice on a guess;
- otherwise make the call;

each request leaving only while the lease is sure to outlast the call (else nothing is sent
and the job is recovered when the lease ends). The outcome is recorded by one script: done
(the order's next job is dispatched), retry (waits in Redis, not in this worker, until its
backoff is over), or dead (the order is held for an operator). Celery acknowledged the
message as the task started; the task's end only tells Flower what happened: SUCCESS, RETRY
(with when) or FAILURE.
"""

import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.exceptions import Retry
from celery.signals import worker_process_shutdown
from celery.utils.log import get_task_logger

from config import Settings, get_settings
from vtex_relay.backoff import retry_delay
from vtex_relay.connections import ordering
from vtex_relay.errors import JobDead, LeaseExpired, OmsError, PermanentError, RetryableError
from vtex_relay.jobs import Attempt, Job
from vtex_relay.models import Kind, Receipt
from vtex_relay.oms_client import OmsClient
from vtex_relay.ordering import Claim, Decision, OrderRef
from vtex_relay.reconcile import landed
from worker.app import app, redact

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


def deliver(job: Job, send_by: float | None = None) -> Receipt:
    """Make *job*'s call to VTEX; raise ``RetryableError`` or ``PermanentError`` if it fails,
    ``LeaseExpired`` (nothing sent) if the request could not leave by *send_by*."""
    client = oms_client()
    if job.kind == "invoice":
        return client.post_invoice(job.account, job.order_id, job.body, send_by=send_by)
    assert job.invoice_number is not None
    if job.kind == "tracking-number":
        return client.patch_tracking_number(
            job.account, job.order_id, job.invoice_number, job.body, send_by=send_by
        )
    return client.put_tracking(
        job.account, job.order_id, job.invoice_number, job.body, send_by=send_by
    )


def run_job(job: Job) -> str:
    """Claim *job*, try it once, record the outcome; return it in a line (Flower's result).

    A try that ends the job dead raises ``JobDead`` and one to be retried raises Celery's
    ``Retry`` (with when), so Flower shows them as FAILURE and RETRY; neither makes Celery
    run or publish anything again: the ordering state in Redis decides what runs next.
    """
    settings = get_settings()
    ref = OrderRef.of(job)
    token = f"{_HOST}:{uuid.uuid4().hex}"
    limit = settings.rate_for(job.account)
    # Taken before the claim, so the lease as this worker counts it never outlasts Redis's.
    claimed_at = time.monotonic()
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
    # The last moment a request may leave: the call must be over before the lease ends (a
    # write and a read, each up to VTEX_TIMEOUT, and a second to spare), or a worker taking the
    # job over could miss this call when it reconciles and send it again.
    send_by = claimed_at + claim.hold + settings.lease_seconds - (2 * settings.vtex_timeout + 1)
    try:
        attempt, outcome, delay = _try(job, claim, settings, send_by)
    except LeaseExpired as exc:
        log.warning("%s: %s; the job is recovered when its lease ends", job.describe(), exc)
        return f"not sent: {exc}"
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
        log.warning(
            "%s: lease ran out during the call; another worker took the job over", job.describe()
        )
        return "outcome not recorded: the lease ran out and another worker took the job over"
    if outcome == "done":
        return attempt.outcome
    status = f"HTTP {attempt.status}: " if attempt.status is not None else ""
    if outcome == "retry":
        when = datetime.now(UTC) + timedelta(seconds=delay)
        # Flower shows the repr of Retry.exc: VTEX's answer and when the next try is due.
        due = f"next try at {when.isoformat(timespec='seconds')} (in {delay:.1f}s)"
        raise Retry(exc=RetryableError(f"{status}{attempt.message}"[:300] + f"; {due}"), when=when)
    raise JobDead(f"dead: {status}{attempt.message}"[:300])


def _try(
    job: Job, claim: Claim, settings: Settings, send_by: float
) -> tuple[Attempt, Decision, float]:
    now = datetime.now(UTC)
    try:
        if claim.uncertain and landed(oms_client(), job, send_by=send_by):
            log.info("%s: already at VTEX (an earlier try landed), not sent again", job.describe())
            return Attempt(at=now, outcome="reconciled", worker=_HOST), "done", 0.0
        receipt = deliver(job, send_by)
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
        attempt = _failed(now, "permanent", exc)
        log.error("%s: refused by VTEX: %s", job.describe(), exc)
        return attempt, "dead", 0.0
    log.info("%s: delivered, receipt %s", job.describe(), receipt.receipt)
    message = f"receipt {receipt.receipt}" if receipt.receipt else ""
    return Attempt(at=now, outcome="delivered", message=message, worker=_HOST), "done", 0.0


def _failed(now: datetime, outcome: Any, exc: OmsError, *, maybe_applied: bool = False) -> Attempt:
    # The attempt is stored in Redis and shown by `dlq show` and Flower: scrubbed first.
    return Attempt(
        at=now,
        outcome=outcome,
        status=exc.status,
        message=redact(exc.message),
        maybe_applied=maybe_applied,
        worker=_HOST,
    )


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
