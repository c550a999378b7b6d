"""The Python API for producers: validate a job, then enqueue it.

Each ``enqueue_*`` call validates everything first — account, path segments and body — and
raises ``InvalidJob`` naming every bad field, with nothing enqueued. It returns the job id.
``QueueUnavailable`` means Redis could not be reached and nothing was enqueued.
"""

import json
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from config import get_settings
from vtex_relay.errors import FieldError, InvalidJob, QueueUnavailable
from vtex_relay.identifiers import check_account, check_invoice_number, check_order_id
from vtex_relay.jobs import Job
from vtex_relay.models import KINDS, validate_body

# kombu flushes a batch's Redis writes in one pipeline round trip per this many messages.
_PIPELINE_SIZE = 1000


def enqueue_invoice(order_id: str, body: Mapping[str, Any], *, account: str | None = None) -> str:
    """Enqueue the invoice POST of *order_id*; *body* is the VTEX invoice body."""
    return enqueue(build_job("invoice", order_id, body, account=account))


def enqueue_tracking_number(
    order_id: str, invoice_number: str, body: Mapping[str, Any], *, account: str | None = None
) -> str:
    """Enqueue the PATCH that gives invoice *invoice_number* its tracking number."""
    job = build_job(
        "tracking-number", order_id, body, invoice_number=invoice_number, account=account
    )
    return enqueue(job)


def enqueue_tracking(
    order_id: str, invoice_number: str, body: Mapping[str, Any], *, account: str | None = None
) -> str:
    """Enqueue a PUT of tracking events for invoice *invoice_number*."""
    job = build_job("tracking", order_id, body, invoice_number=invoice_number, account=account)
    return enqueue(job)


def build_job(
    kind: object,
    order_id: object,
    body: object,
    *,
    invoice_number: object = None,
    account: object = None,
) -> Job:
    """Validate every part of a job and build it; ``InvalidJob`` names each bad field."""
    errors: list[FieldError] = []
    if kind not in KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}"))
        raise InvalidJob(errors)
    if account is None:
        account = get_settings().vtex_account
        if account is None:
            errors.append(FieldError("account", "required: give one or set VTEX_ACCOUNT"))
    if account is not None:
        _check(errors, "account", account, check_account)
    _check(errors, "orderId", order_id, check_order_id)
    if kind != "invoice":
        if invoice_number is None:
            errors.append(FieldError("invoiceNumber", f"required for a {kind} job"))
        else:
            _check(errors, "invoiceNumber", invoice_number, check_invoice_number)
    elif invoice_number is not None:
        errors.append(FieldError("invoiceNumber", "not used by an invoice job: it is in the body"))
    try:
        vtex_body = validate_body(kind, body)
    except InvalidJob as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidJob(errors)
    if kind == "invoice":
        invoice_number = vtex_body["invoiceNumber"]
    return Job(
        kind=kind,
        account=account,
        order_id=order_id,
        invoice_number=invoice_number,
        body=vtex_body,
    )


def job_from_line(line: Mapping[str, Any]) -> Job:
    """Build a job from one batch line ``{kind, orderId, invoiceNumber?, account?, body}``."""
    unknown = sorted(set(line) - {"kind", "orderId", "invoiceNumber", "account", "body"})
    if unknown:
        raise InvalidJob([FieldError(name, "unknown field") for name in unknown])
    return build_job(
        line.get("kind"),
        line.get("orderId"),
        line.get("body"),
        invoice_number=line.get("invoiceNumber"),
        account=line.get("account"),
    )


def enqueue(job: Job) -> str:
    """Publish one validated job; return its id."""
    return enqueue_many([job])[0]


def enqueue_many(jobs: Iterable[Job]) -> list[str]:
    """Publish validated jobs in order, pipelining the Redis writes; return their ids."""
    app = _celery()
    ids: list[str] = []
    try:
        with app.producer_or_acquire() as producer, producer.batch(max_size=_PIPELINE_SIZE):
            for job in jobs:
                kwargs = job.message_kwargs()
                app.send_task(
                    job.kind,
                    kwargs=kwargs,
                    kwargsrepr=_summary_repr(kwargs),
                    task_id=job.job_id,
                    producer=producer,
                )
                ids.append(job.job_id)
    except (OperationalError, RedisError, OSError) as exc:
        raise QueueUnavailable(_unreachable(exc, len(ids))) from None
    return ids


def validate_batch(
    lines: Iterable[str], spool: IO[str], on_error: Callable[[int, InvalidJob], None]
) -> int:
    """Validate JSON lines, writing each good job to *spool*; report bad ones; return the count.

    Blank lines are skipped. The caller enqueues only if no line was bad.
    """
    count = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            on_error(number, InvalidJob([FieldError("line", f"not JSON: {exc.msg}")]))
            continue
        try:
            if not isinstance(data, dict):
                raise InvalidJob([FieldError("line", "must be a JSON object")])
            job = job_from_line(data)
        except InvalidJob as exc:
            on_error(number, exc)
            continue
        spool.write(job.model_dump_json())
        spool.write("\n")
        count += 1
    return count


def _summary_repr(kwargs: dict[str, Any]) -> str:
    # What Flower shows as the task's arguments: the envelope without the body, which holds
    # the customer's invoice data. Celery's default repr of the whole body is also the
    # producer's single largest cost.
    return json.dumps({k: v for k, v in kwargs.items() if k != "body"})


def _check(errors: list[FieldError], name: str, value: object, check: Callable[[str], str]) -> None:
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be a string"))
        return
    try:
        check(value)
    except ValueError as exc:
        errors.append(FieldError(name, str(exc)))


def _celery() -> Celery:
    get_settings()  # raises ConfigurationError (not SystemExit) for a library caller
    from worker.app import app

    return app


def _unreachable(exc: BaseException, sent: int) -> str:
    from kombu.utils.url import maybe_sanitize_url

    url = maybe_sanitize_url(get_settings().redis_url)
    if not sent:
        return f"cannot reach Redis at {url} ({exc}); nothing was enqueued"
    return (
        f"cannot reach Redis at {url} ({exc}); of the {sent} job(s) published before the "
        "failure, those in pipelines already flushed are enqueued, the rest are not"
    )
