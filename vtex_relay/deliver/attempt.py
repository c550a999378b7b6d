"""One try of a job: claim it, call VTEX (or find that an earlier try landed), decide what
happens next, record it.

A task message only says "this job may be ready". ``run`` first claims the job in Redis (a
lease: the "in flight" record); a message for a job that is not ready — a duplicate delivery,
a restore after a crash — is dropped. Then one try (``decide``):

- if an earlier try may have landed (it timed out, or its worker died), GET order first and
  count the job as done if VTEX shows it — an invoice is never POSTed twice on a guess;
- otherwise make the call;

each request leaving only while the lease is sure to outlast the call (else nothing is sent
and the job is recovered when the lease ends). A job whose account is no longer configured
(the configuration changed since it was enqueued) ends dead, unsent: it is never sent with
another account's credentials. The outcome is recorded by one script: done
(the order's next job is dispatched), retry (waits in Redis, not in this worker, until its
backoff is over), or dead (the order is held for an operator).

Everything here takes its collaborators as arguments — the OMS client, the ordering scripts,
the settings, the worker's name, the redactor, the logger — so tests drive it in-process
(an ``httpx.MockTransport`` or the sandbox for VTEX, a real Redis). The Celery tasks
(``tasks/delivery.py``) hand it the process's own and turn its ``Result`` into what Flower shows.
"""

import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from vtex_relay.deliver.backoff import retry_delay
from vtex_relay.deliver.oms import OmsClient
from vtex_relay.deliver.reconcile import shows
from vtex_relay.deliver.tally import Tally
from vtex_relay.deliver.totals import Invoices, order_view, total_problem
from vtex_relay.errors import LeaseExpired, OmsError, PermanentError, RetryableError, UnknownAccount
from vtex_relay.jobs import Attempt, Job, Outcome
from vtex_relay.models import Receipt
from vtex_relay.operations import operation
from vtex_relay.redaction import Redactor
from vtex_relay.settings import Settings
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.ordering import Claim, Decision, Ordering

HOST = socket.gethostname()
log = logging.getLogger(__name__)

# Cuts secrets out of a text: a ``Redactor``, or any function of the kind.
Redact = Callable[[str], str]


@dataclass(frozen=True)
class Try:
    """One try: its record (``attempt``) and what happens after it.

    ``decision``: ``done`` (the order moves on), ``retry`` in ``delay`` seconds, or ``dead``.
    ``pause_account``: seconds every job of the account waits (after a 429; 0: no pause).
    """

    attempt: Attempt
    decision: Decision
    delay: float = 0.0
    pause_account: float = 0.0
    seen: str = ""  # the order as the try's GET read it (totals.order_view, JSON), if one did
    tally: Tally = field(default_factory=Tally)  # what it did, for the metrics


# How ``run`` ended: a try recorded (done, retry, dead), or no try recorded: the account must
# wait (wait), the message was for a job that is not ready (dropped), nothing could be sent
# before the lease might run out (not-sent), or the lease ran out during the call (lost).
Ending = Literal["done", "retry", "dead", "wait", "dropped", "not-sent", "lost"]


@dataclass(frozen=True)
class Result:
    """What ``run`` did. ``text`` is its line for Flower: the outcome of a done try, VTEX's
    answer and when the next try is due for a retry, ``dead: ...`` for a dead job, else why
    nothing was recorded. ``tried`` is the try, if one was made; ``when``, a retry's due time."""

    ending: Ending
    text: str
    tried: Try | None = None
    when: datetime | None = None


def run(
    job: Job,
    *,
    client: OmsClient,
    ordering: Ordering,
    settings: Settings,
    worker: str = HOST,
    redact: Redact | None = None,
    logger: logging.Logger = log,
) -> Result:
    """Claim *job*, try it once (``decide``), record the outcome; say what happened."""
    ref = OrderRef.of(job)
    token = f"{worker}:{uuid.uuid4().hex}"
    limit = settings.rate_for(job.account)
    # Taken before the claim, so the lease as this worker counts it never outlasts Redis's.
    claimed_at = time.monotonic()
    # An invoice whose total is checked: a GET, then the POST.
    reads_first = operation(job.kind).posts_invoice and settings.verifies_total(job.account)
    claim = ordering.claim(
        ref, job.job_id, token, settings.lease_seconds, *limit, checks_total=reads_first
    )
    if claim.verdict == "wait":
        logger.debug("%s: waiting %.2fs for the account's rate limit", job.describe(), claim.wait)
        return Result(
            "wait", f"waiting {claim.wait:.2f}s for the account's rate limit or 429 pause"
        )
    if claim.verdict != "run":
        logger.info("%s: message dropped, the job is not ready (%s)", job.describe(), claim.verdict)
        return Result("dropped", f"not run: the job is not ready ({claim.verdict} message)")
    unconfirmed = ordering.confirm()  # ENQUEUE_WAIT_*: the claim must outlive a failover
    if unconfirmed:
        logger.warning("%s: not sent, the claim is not confirmed %s", job.describe(), unconfirmed)
        return Result("not-sent", f"not sent: the claim is not confirmed {unconfirmed}")
    if claim.hold > 0:
        time.sleep(claim.hold)  # up to a second, to go out at the job's rate-limit slot
    send_by = send_deadline(claimed_at, claim, settings)
    try:
        tried = decide(
            job,
            claim,
            send_by,
            client=client,
            settings=settings,
            worker=worker,
            redact=redact,
            logger=logger,
            # What the relay has delivered of the order's other invoices (read by the claim):
            # VTEX's GET may not show it yet.
            posted=claim.posted,
        )
    except LeaseExpired as exc:
        logger.warning("%s: %s; the job is recovered when its lease ends", job.describe(), exc)
        return Result("not-sent", f"not sent: {exc}")
    kept = ordering.finish(
        ref,
        job.job_id,
        token,
        tried.decision,
        tried.attempt.model_dump_json(),
        delay=tried.delay,
        uncertain=tried.attempt.maybe_applied,
        retention_seconds=int(settings.job_retention_days * 86400),
        pause_account=tried.pause_account,
        seen=tried.seen,
        kind=job.kind,
        result=tried.tally.result,
        reconciled=tried.tally.reconciled,
        durations=tried.tally.encoded(),
    )
    if not kept:
        logger.warning(
            "%s: lease ran out during the call; another worker took the job over", job.describe()
        )
        return Result(
            "lost",
            "outcome not recorded: the lease ran out and another worker took the job over",
            tried,
        )
    return _recorded(tried)


def send_deadline(claimed_at: float, claim: Claim, settings: Settings) -> float:
    """The last moment (``time.monotonic()``) a request of the try may leave: the call must be
    over before the lease ends (a write and a read, each up to VTEX_TIMEOUT, and a second to
    spare), or a worker taking the job over could miss this call when it reconciles and send
    it again. *claimed_at*: taken just before the claim."""
    return claimed_at + claim.hold + settings.lease_seconds - (2 * settings.vtex_timeout + 1)


def decide(
    job: Job,
    claim: Claim,
    send_by: float,
    *,
    client: OmsClient,
    settings: Settings,
    worker: str = HOST,
    redact: Redact | None = None,
    logger: logging.Logger = log,
    posted: Invoices | None = None,
) -> Try:
    """Try *job* once under *claim* and decide what happens after: reconcile first if the claim
    is uncertain, check an invoice against the order's total (``VERIFY_ORDER_TOTAL``; *posted*:
    the order's invoices the relay has delivered), else
    make the call; a job of an account that is not configured ends dead, unsent. Raises
    ``LeaseExpired`` (nothing sent) if no request could leave by
    *send_by*. *redact* (default: the settings' tokens cut out) scrubs the attempt's
    message, which is kept in Redis and shown by ``dlq show`` and Flower. The try's ``seen``
    is the order as its GET read it, if it made one."""
    redact = redact or _redactor(settings)
    now = datetime.now(UTC)
    if not settings.knows(job.account):
        # Removed from the configuration since it was enqueued: no credentials of its own, and
        # another account's must never be used. An operator re-adds it and replays the job.
        message = f"not sent: {UnknownAccount(job.account)} (VTEX_ACCOUNTS / VTEX_ACCOUNTS_FILE)"
        logger.error("%s: %s", job.describe(), message)
        attempt = Attempt(at=now, outcome="permanent", message=message, worker=worker)
        return Try(attempt, "dead")
    seen = ""  # a GET may be followed by a failing call: every Try carries what it read
    tally = Tally()
    try:
        # One GET order serves both the reconciliation and, for an invoice, the total check.
        checked = operation(job.kind).posts_invoice and settings.verifies_total(job.account)
        order = None
        if claim.uncertain or checked:
            order = tally.timed(
                "get-order", lambda: client.get_order(job.account, job.order_id, send_by=send_by)
            )
            seen = json.dumps(order_view(order))
        if claim.uncertain and order is not None:
            found = shows(order, job)
            tally.reconciled = "found" if found else "not-found"
            if found:
                logger.info(
                    "%s: already at VTEX (an earlier try landed), not sent again", job.describe()
                )
                attempt = Attempt(at=now, outcome="reconciled", worker=worker)
                return Try(attempt, "done", seen=seen, tally=tally)
        problem = (
            total_problem(order, job.body, settings.policy_for(job.account), posted)
            if (checked and order is not None)
            else None
        )
        if problem is not None:
            logger.error(
                "%s: not sent, it would leave the order wrong: %s", job.describe(), problem
            )
            message = f"not sent: {problem} (VERIFY_ORDER_TOTAL)"
            attempt = Attempt(at=now, outcome="permanent", message=message, worker=worker)
            return Try(attempt, "dead", seen=seen, tally=tally)
        receipt = tally.timed(job.kind, lambda: send(client, job, send_by))
    except RetryableError as exc:
        attempt = _failed(now, "retryable", exc, worker, redact, maybe_applied=exc.maybe_applied)
        attempt = attempt.model_copy(update={"retry_after": exc.retry_after})
        # However long VTEX asks, no wait (of the job, or the account's) outlasts the cap.
        retry_after = (
            None if exc.retry_after is None else min(exc.retry_after, settings.vtex_429_pause_max)
        )
        if claim.tries >= settings.retry_max_attempts:
            logger.error("%s: dead after %d tries: %s", job.describe(), claim.tries, exc)
            delay = 0.0
            decision: Decision = "dead"
        else:
            delay = retry_delay(
                claim.tries,
                settings.retry_backoff_base,
                settings.retry_backoff_max,
                retry_after,
            )
            logger.warning(
                "%s: try %d failed (%s); next in %.1fs", job.describe(), claim.tries, exc, delay
            )
            decision = "retry"
        # A 429 is about the account, not this job: every worker holds back its jobs, for its
        # Retry-After or, without one, VTEX's advice of about a minute (VTEX_429_PAUSE); never
        # longer than VTEX_429_PAUSE_MAX.
        asked = settings.vtex_429_pause if retry_after is None else retry_after
        pause = min(max(delay, asked), settings.vtex_429_pause_max) if exc.status == 429 else 0.0
        return Try(attempt, decision, delay, pause, seen, tally)
    except PermanentError as exc:
        logger.error("%s: refused by VTEX: %s", job.describe(), exc)
        attempt = _failed(now, "permanent", exc, worker, redact)
        return Try(attempt, "dead", seen=seen, tally=tally)
    logger.info("%s: delivered, receipt %s", job.describe(), receipt.receipt)
    message = f"receipt {receipt.receipt}" if receipt.receipt else ""
    attempt = Attempt(at=now, outcome="delivered", message=message, worker=worker)
    return Try(attempt, "done", seen=seen, tally=tally)


def send(client: OmsClient, job: Job, send_by: float | None = None) -> Receipt:
    """Make *job*'s call to VTEX; raise ``RetryableError`` or ``PermanentError`` if it fails,
    ``LeaseExpired`` (nothing sent) if the request could not leave by *send_by*."""
    op = operation(job.kind)
    return client.write(
        op, job.account, job.order_id, job.invoice_number, job.body, send_by=send_by
    )


def _recorded(tried: Try) -> Result:
    attempt = tried.attempt
    if tried.decision == "done":
        return Result("done", attempt.outcome, tried)
    status = f"HTTP {attempt.status}: " if attempt.status is not None else ""
    if tried.decision == "retry":
        when = datetime.now(UTC) + timedelta(seconds=tried.delay)
        due = f"next try at {when.isoformat(timespec='seconds')} (in {tried.delay:.1f}s)"
        return Result("retry", f"{status}{attempt.message}"[:300] + f"; {due}", tried, when)
    return Result("dead", f"dead: {status}{attempt.message}"[:300], tried)


def _failed(
    now: datetime,
    outcome: Outcome,
    exc: OmsError,
    worker: str,
    redact: Redact,
    *,
    maybe_applied: bool = False,
) -> Attempt:
    return Attempt(
        at=now,
        outcome=outcome,
        status=exc.status,
        message=redact(exc.message),
        maybe_applied=maybe_applied,
        worker=worker,
    )


def _redactor(settings: Settings) -> Redactor:
    return Redactor(settings.tokens())
