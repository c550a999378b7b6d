"""The Python API for producers: validate a job, then enqueue it.

Each ``enqueue_*`` call validates everything first — account, path segments and body — and
raises ``InvalidJob`` naming every bad field, with nothing enqueued. It returns the job id.
``QueueUnavailable`` means Redis could not be reached and nothing was enqueued.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from pydantic_core import to_json
from redis.exceptions import RedisError

from vtex_relay.errors import FieldError, InvalidJob, InvoiceConflict, QueueUnavailable
from vtex_relay.identifiers import check_account, check_invoice_number, check_order_id
from vtex_relay.jobs import Job
from vtex_relay.models import KINDS
from vtex_relay.operations import OPERATIONS, validate_body
from vtex_relay.settings import get_settings
from vtex_relay.store import connections
from vtex_relay.store.enqueuing import Enqueued

MAX_IDEMPOTENCY_KEY = 200
# Printable ASCII: one rule whatever Python's Unicode tables say, and one the OpenAPI
# document states exactly (str.isprintable() changes with the Unicode version).
IDEMPOTENCY_KEY_PATTERN = f"[ -~]{{1,{MAX_IDEMPOTENCY_KEY}}}"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def enqueue_invoice(
    order_id: str,
    body: Mapping[str, Any],
    *,
    account: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Enqueue the invoice POST of *order_id*; *body* is the VTEX invoice body."""
    job = build_job("invoice", order_id, body, account=account)
    return enqueue(with_idempotency_key(job, idempotency_key))


def enqueue_tracking_number(
    order_id: str,
    invoice_number: str,
    body: Mapping[str, Any],
    *,
    account: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Enqueue the PATCH that gives invoice *invoice_number* its tracking number."""
    job = build_job(
        "tracking-number", order_id, body, invoice_number=invoice_number, account=account
    )
    return enqueue(with_idempotency_key(job, idempotency_key))


def enqueue_tracking(
    order_id: str,
    invoice_number: str,
    body: Mapping[str, Any],
    *,
    account: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Enqueue a PUT of tracking events for invoice *invoice_number*."""
    job = build_job("tracking", order_id, body, invoice_number=invoice_number, account=account)
    return enqueue(with_idempotency_key(job, idempotency_key))


def with_idempotency_key(job: Job, key: object) -> Job:
    """*job* with the producer's idempotency key (None: the job's content is its identity).

    Two jobs of an order with the same key are one job, whatever their bodies; ``InvalidJob``
    if the key is not a string of 1 to 200 printable ASCII characters.
    """
    errors = idempotency_key_errors(key)
    if errors:
        raise InvalidJob(errors)
    if key is None:
        return job
    return job.model_copy(update={"idempotency_key": key})


def idempotency_key_errors(key: object) -> list[FieldError]:
    if key is None or (isinstance(key, str) and _IDEMPOTENCY_KEY.fullmatch(key)):
        return []
    reason = f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters (space to '~')"
    return [FieldError("idempotencyKey", reason)]


def build_job(
    kind: object,
    order_id: object,
    body: object,
    *,
    invoice_number: object = None,
    account: object = None,
) -> Job:
    """Validate every part of a job and build it; ``InvalidJob`` names each bad field (an
    account that is not configured, when accounts are, is one).

    The job holds the checked values (the account in lower case: one account, one order
    namespace) and a body of at most ``MAX_BODY_BYTES`` as compact UTF-8 JSON.
    """
    errors: list[FieldError] = []
    if kind not in KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(KINDS)}, not {_shown(kind)}"))
        raise InvalidJob(errors)
    settings = get_settings()
    if account is None:
        account = settings.vtex_account
        if account is None:
            errors.append(FieldError("account", "required: give one or set VTEX_ACCOUNT"))
    if account is not None:
        account = _check(errors, "account", account, check_account)
    if account is not None and not settings.knows(account):
        # Accounts with their own credentials are the only ones: a worker would dead-letter it.
        message = f"account {account!r} is not configured (VTEX_ACCOUNTS / VTEX_ACCOUNTS_FILE)"
        errors.append(FieldError("account", message))
    order_id = _check(errors, "orderId", order_id, check_order_id)
    op = OPERATIONS[kind]
    if op.needs_invoice_number:
        if invoice_number is None:
            errors.append(FieldError("invoiceNumber", f"required for a {kind} job"))
        else:
            invoice_number = _check(errors, "invoiceNumber", invoice_number, check_invoice_number)
    elif invoice_number is not None:
        errors.append(FieldError("invoiceNumber", "not used by an invoice job: it is in the body"))
    not_listed = 0
    try:
        vtex_body = validate_body(kind, body)
    except InvalidJob as exc:
        errors.extend(exc.errors)
        not_listed = exc.not_listed
    else:
        # Measured on what a worker will send; a body is stored in Redis about twice.
        size, limit = len(to_json(vtex_body)), settings.max_body_bytes
        if size > limit:
            message = f"is {size:,} bytes as JSON, more than MAX_BODY_BYTES ({limit:,})"
            errors.append(FieldError("body", message))
    if errors:
        raise InvalidJob(errors, not_listed)
    assert isinstance(account, str)  # no errors: it was checked
    if op.posts_invoice:
        invoice_number = vtex_body["invoiceNumber"]
    return Job(
        kind=kind,
        account=account,
        order_id=order_id,
        invoice_number=invoice_number,
        body=vtex_body,
        invoice_policy=settings.policy_for(account),
    )


def enqueue(job: Job) -> str:
    """Enqueue one validated job; return its id (an identical job: the first one's id).

    Raises ``InvoiceConflict`` for a different invoice on an order that has one, and
    ``QueueUnavailable`` if Redis cannot be reached or refuses the job (out of memory).
    """
    [result] = enqueue_many([job])
    return accepted(job, result).job_id


def accepted(job: Job, result: Enqueued) -> Enqueued:
    """*result* of enqueueing *job* alone, if it was enqueued or a duplicate; else raise
    ``QueueUnavailable`` (Redis refused it), ``InvoiceConflict`` or ``InvalidJob`` (an update
    that names an invoice the order does not have, or comes before its tracking number)."""
    if result.verdict == "failed":
        state = result.state or ""
        if state.startswith("UNCONFIRMED"):  # on the primary, not yet where it was asked
            raise QueueUnavailable(f"{refused_by_redis(state)}; {SEND_AGAIN}")
        raise QueueUnavailable(f"{refused_by_redis(state)}; nothing was enqueued")
    if result.verdict in ("unknown-invoice", "untracked"):
        raise InvalidJob([FieldError("invoiceNumber", update_refusal(job, result))])
    if result.verdict == "conflict":
        raise InvoiceConflict(
            job.account,
            job.order_id,
            result.job_id,
            result.invoice_number or "?",
            result.state or "?",
            wanted=job.invoice_number,
        )
    return result


def enqueue_many(jobs: Iterable[Job]) -> list[Enqueued]:
    """Enqueue validated jobs in order: one script call for one job, else pipelines of 1,000.

    Each result says whether the job was enqueued, was a duplicate of an enqueued job (with
    that job's id), conflicts with an invoice, was refused by Redis (``failed``: out of memory)
    or skipped because an earlier job of its order here was not enqueued: an order never
    gets a later job without the earlier ones. ``QueueUnavailable`` if Redis went away.
    """
    get_settings()  # raises ConfigurationError (not SystemExit) for a library caller
    results: list[Enqueued] = []
    try:
        results.extend(result for _job, result in connections.ordering().enqueue(jobs))
    except RedisError as exc:
        raise QueueUnavailable(unreachable(exc, len(results))) from None
    return results


def _check(
    errors: list[FieldError], name: str, value: object, check: Callable[[str], str]
) -> str | None:
    """The value *check* returns (the one to keep: an account comes back in lower case), or
    ``None`` with the reason added to *errors*."""
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be a string"))
        return None
    try:
        return check(value)
    except ValueError as exc:
        errors.append(FieldError(name, str(exc)))
        return None


def _shown(value: object) -> str:
    """*value* for an error message: a short string as itself, anything else by its type (the
    repr of a huge int raises, and a long string would drown the message)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40] + "...")
    if value is None or isinstance(value, bool):
        return repr(value)
    return f"a value of type {type(value).__name__}"


def update_refusal(job: Job, result: Enqueued) -> str:
    """Why the enqueue script refused update *job* (``unknown-invoice`` or ``untracked``)."""
    if result.verdict == "unknown-invoice":
        known = ", ".join(sorted((result.state or "").split()))
        return (
            f"order {job.account}/{job.order_id} has no invoice {job.invoice_number} (its "
            f"invoices: {known}); VTEX would answer 404"
        )
    return (
        f"invoice {job.invoice_number} has no tracking number yet: send the tracking number "
        "first (a tracking-number job), then its tracking events"
    )


def _redis_url() -> str:
    return get_settings().shown_redis_url()


def refused_by_redis(error: str) -> str:
    """Redis's error reply to a script, said as what it is."""
    if error.startswith("UNCONFIRMED"):
        confirmed = error.removeprefix("UNCONFIRMED ")
        return f"Redis at {_redis_url()} has the job, but it is not confirmed: {confirmed}"
    if error.startswith("OOM"):
        return f"Redis at {_redis_url()} is out of memory (maxmemory reached: {error})"
    return f"Redis at {_redis_url()} refused the job ({error})"


def unreachable(exc: BaseException, sent: int) -> str:
    """What went wrong with Redis, for a call that had handled *sent* jobs when it did."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        trouble = refused_by_redis(f"OOM {exc}")
    elif isinstance(exc, redis.ResponseError):
        trouble = refused_by_redis(str(exc))
    else:
        trouble = f"cannot reach Redis at {_redis_url()} ({exc})"
    if not sent:
        return f"{trouble}; nothing was enqueued"
    return (
        f"{trouble}; the first {sent} job(s) were handled, the next 2,000 may or may not have "
        f"been, the rest were not. {RERUN_IS_SAFE}"
    )


# Said of a job enqueued on the primary but not confirmed where ENQUEUE_WAIT_* asks.
SEND_AGAIN = (
    "it may be lost if the primary fails now; sending it again is safe (an identical job is "
    "answered with the first one's id)"
)

# Said wherever a batch stopped part-way.
RERUN_IS_SAFE = (
    "Each order kept its jobs up to the first one missing, never a later job without the "
    "earlier ones; running the same jobs again is safe: a job identical to one enqueued is "
    "answered with that job's id, not enqueued twice."
)
