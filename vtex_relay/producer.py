"""The Python API for producers: validate a job, then enqueue it.

Each ``enqueue_*`` call validates everything first — account, path segments and body — and
raises ``InvalidJob`` naming every bad field, with nothing enqueued. It returns the job id.
``QueueUnavailable`` means Redis could not be reached and nothing was enqueued.
"""

import json
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, NamedTuple

from celery import Celery
from redis.exceptions import RedisError

from config import get_settings
from vtex_relay import connections
from vtex_relay.errors import FieldError, InvalidJob, InvoiceConflict, QueueUnavailable
from vtex_relay.identifiers import check_account, check_invoice_number, check_order_id
from vtex_relay.jobs import Job
from vtex_relay.messages import QUEUE, build_message
from vtex_relay.models import KINDS, validate_body
from vtex_relay.ordering import Enqueued, OrderRef, body_digest


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
    """Enqueue one validated job; return its id (an identical invoice: the first one's id).

    Raises ``InvoiceConflict`` for a different invoice on an order that has one.
    """
    [result] = enqueue_many([job])
    if result.verdict == "conflict":
        raise InvoiceConflict(
            job.account,
            job.order_id,
            result.job_id,
            result.invoice_number or "?",
            result.state or "?",
        )
    return result.job_id


def enqueue_many(jobs: Iterable[Job]) -> list[Enqueued]:
    """Enqueue validated jobs in order: one script call for one job, else pipelines of 1,000.

    Each result says whether the job was enqueued, was a duplicate of an existing invoice
    (with that job's id) or conflicts with one (nothing enqueued for that job).
    """
    app = _celery()
    messages = ((job, build_message(app, job, QUEUE)) for job in jobs)
    results: list[Enqueued] = []
    try:
        results.extend(result for _job, result in connections.ordering().enqueue(messages))
    except RedisError as exc:
        raise QueueUnavailable(_unreachable(exc, len(results))) from None
    return results


class BatchInvoice(NamedTuple):
    """An invoice line of a batch, kept from validation for the conflict check."""

    line: int
    ref: OrderRef
    digest: str
    number: str


def validate_batch(
    lines: Iterable[str], spool: IO[str], on_error: Callable[[int, InvalidJob], None]
) -> list[BatchInvoice]:
    """Validate JSON lines, writing each good job to *spool* and reporting bad ones.

    Blank lines are skipped. Returns the invoice lines, for ``invoice_conflicts``. The caller
    enqueues only if no line was bad.
    """
    invoices: list[BatchInvoice] = []
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
        if job.kind == "invoice":
            ref = OrderRef.of(job)
            invoices.append(
                BatchInvoice(number, ref, body_digest(job.body), job.invoice_number or "")
            )
        spool.write(job.model_dump_json())
        spool.write("\n")
    return invoices


def invoice_conflicts(invoices: list[BatchInvoice]) -> list[tuple[int, str]]:
    """(line, reason) for each invoice line that the one-invoice rule would refuse.

    A line conflicts with an invoice already enqueued for its order, or with an earlier line
    of the batch for the same order, unless the bodies are identical (a duplicate).
    """
    first: dict[OrderRef, BatchInvoice] = {}
    conflicts: list[tuple[int, str]] = []
    for invoice in invoices:
        earlier = first.setdefault(invoice.ref, invoice)
        if earlier.digest != invoice.digest:
            reason = f"a different invoice for this order is on line {earlier.line}"
            conflicts.append((invoice.line, f"{reason} (one invoice per order)"))
    try:
        existing = connections.ordering().invoices(list(first))
    except RedisError as exc:
        raise QueueUnavailable(_unreachable(exc, 0)) from None
    for invoice, found in zip(first.values(), existing, strict=True):
        if found is not None and found[1] != invoice.digest:
            job_id, _digest, number, state = found
            reason = f"the order already has invoice {number} (job {job_id}, {state})"
            conflicts.append((invoice.line, f"{reason}; one invoice per order"))
    return sorted(conflicts)


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
        f"cannot reach Redis at {url} ({exc}); the first {sent} job(s) were enqueued, the next "
        "2,000 may or may not be, the rest were not (enqueueing the same Job objects again is "
        "safe: a job id already enqueued is not enqueued twice)"
    )
