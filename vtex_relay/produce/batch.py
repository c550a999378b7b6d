"""Batches: JSON lines validated, all of them, before any is enqueued.

``validate_batch`` reads the lines (UTF-8 bytes or text), spools each good job and reports
every bad line by its number; ``invoice_conflicts`` then finds the invoices the one-invoice
rule would refuse, against Redis and against earlier lines. The caller (``vtex-relay enqueue
batch``) enqueues the spooled jobs only if both found nothing.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, NamedTuple

from redis.exceptions import RedisError

from vtex_relay.errors import FieldError, InvalidJob, QueueUnavailable
from vtex_relay.jobs import Job
from vtex_relay.models import parse_json
from vtex_relay.produce.api import (
    build_job,
    idempotency_key_errors,
    unreachable,
    with_idempotency_key,
)
from vtex_relay.settings import get_settings
from vtex_relay.store import connections, ledgers
from vtex_relay.store.fingerprints import body_digest
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.ordering import Enqueued

LINE_FIELDS = frozenset({"kind", "orderId", "invoiceNumber", "account", "idempotencyKey", "body"})


def job_from_line(line: Mapping[str, Any]) -> Job:
    """Build a job from one batch line
    ``{kind, orderId, invoiceNumber?, account?, idempotencyKey?, body}``."""
    unknown = sorted(set(line) - LINE_FIELDS)
    if unknown:
        raise InvalidJob([FieldError(str(name)[:40], "unknown field") for name in unknown])
    key_errors = idempotency_key_errors(line.get("idempotencyKey"))
    try:
        job = build_job(
            line.get("kind"),
            line.get("orderId"),
            line.get("body"),
            invoice_number=line.get("invoiceNumber"),
            account=line.get("account"),
        )
    except InvalidJob as exc:
        raise InvalidJob(exc.errors + key_errors, exc.not_listed) from None
    return with_idempotency_key(job, line.get("idempotencyKey"))


class BatchLine(NamedTuple):
    """A good line of a batch, as the checks across lines need it."""

    line: int
    kind: str
    ref: OrderRef
    number: str  # the invoice number the job POSTs or updates
    digest: str  # an invoice's body digest ("" for updates)
    single: bool  # an Output invoice under the "single" policy: one per order
    tracks: bool  # gives its invoice a tracking number (a PATCH, or an invoice with one)


def validate_batch(
    lines: Iterable[bytes | str], spool: IO[str], on_error: Callable[[int, InvalidJob], None]
) -> list[BatchLine]:
    """Validate JSON lines (UTF-8 bytes or text), writing each good job to *spool* and
    reporting bad ones, each by its number.

    Blank lines are skipped. A line is bad, never an exception, whatever its bytes: not UTF-8,
    not JSON, too deep or a number too long to parse, or over ``Settings.input_limit()``.
    Returns the good lines, for ``invoice_conflicts`` and ``update_refusals``. The caller
    enqueues only if no line was bad.
    """
    limit = get_settings().input_limit()
    good: list[BatchLine] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if len(text) > limit and len(_without_end(text)) > limit:
            reason = f"over {limit:,} bytes, the most read for a line (4 times MAX_BODY_BYTES)"
            on_error(number, InvalidJob([FieldError("line", reason)]))
            continue
        try:
            data = parse_json(text)
        except ValueError as exc:
            on_error(number, InvalidJob([FieldError("line", str(exc))]))
            continue
        try:
            if not isinstance(data, dict):
                raise InvalidJob([FieldError("line", "must be a JSON object")])
            job = job_from_line(data)
        except InvalidJob as exc:
            on_error(number, exc)
            continue
        invoice = job.kind == "invoice"
        good.append(
            BatchLine(
                number,
                job.kind,
                OrderRef.of(job),
                job.invoice_number or "",
                body_digest(job.body) if invoice else "",
                invoice and job.body.get("type") != "Input" and job.invoice_policy == "single",
                job.kind == "tracking-number" or bool(invoice and job.body.get("trackingNumber")),
            )
        )
        spool.write(job.model_dump_json())
        spool.write("\n")
    return good


def invoice_conflicts(lines: list[BatchLine]) -> list[tuple[int, str]]:
    """(line, reason) for each invoice line that the invoicing policy would refuse.

    A line conflicts, unless the bodies are identical (a duplicate), with an invoice already
    enqueued or on an earlier line: under the same invoice number (each number is one
    invoice, ever), or, for an Output invoice under the ``single`` policy, any Output
    invoice of its order.
    """
    orders: dict[OrderRef, BatchLine] = {}  # the single-policy Output of each order
    numbers: dict[tuple[OrderRef, str], BatchLine] = {}
    conflicts: dict[int, str] = {}
    for invoice in (line for line in lines if line.kind == "invoice"):
        if invoice.single:
            earlier = orders.setdefault(invoice.ref, invoice)
            if earlier.digest != invoice.digest:
                reason = f"a different invoice for this order is on line {earlier.line}"
                conflicts[invoice.line] = f"{reason} (one invoice per order)"
                continue
        earlier = numbers.setdefault((invoice.ref, invoice.number), invoice)
        if earlier.digest != invoice.digest:
            reason = f"a different invoice under number {invoice.number} is on line {earlier.line}"
            conflicts[invoice.line] = f"{reason} (each invoice number once)"
    client = connections.redis_client()
    try:
        existing = ledgers.output_invoices(client, list(orders))
        held = ledgers.number_holders(client, [(ref, n) for ref, n in numbers])
    except RedisError as exc:
        raise QueueUnavailable(unreachable(exc, 0)) from None
    for invoice, found in zip(orders.values(), existing, strict=True):
        if found is not None and found[1] != invoice.digest:
            job_id, _digest, number, state = found
            reason = f"the order already has invoice {number} (job {job_id}, {state})"
            conflicts.setdefault(invoice.line, f"{reason}; one invoice per order")
    for invoice, holder in zip(numbers.values(), held, strict=True):
        if holder is not None and holder[1] != invoice.digest:
            job_id, _digest, state = holder
            reason = f"invoice number {invoice.number} is already a different invoice"
            conflicts.setdefault(invoice.line, f"{reason} (job {job_id}, {state})")
    return sorted(conflicts.items())


def _without_end(line: bytes | str) -> bytes | str:
    return line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n")


def bounded_lines(file: IO[bytes]) -> Iterator[bytes]:
    """The lines of *file*, each cut after a little more than ``input_limit()`` bytes (the rest
    of a longer line is skipped, not read into memory): ``validate_batch`` refuses it."""
    keep = get_settings().input_limit() + 3  # more than validate_batch allows
    while line := file.readline(keep):
        if len(line) == keep and not line.endswith(b"\n"):
            while (rest := file.readline(65_536)) and not rest.endswith(b"\n"):
                pass
        yield line


def update_refusals(lines: list[BatchLine]) -> list[tuple[int, str]]:
    """(line, reason) for each update line the enqueue script would refuse: one naming an
    invoice its order does not have, or a tracking update before its invoice's tracking number.

    What the order has is what Redis holds plus the earlier lines of the batch; an order whose
    invoices the relay never saw (none in Redis or the batch) takes any update, as the script
    does.
    """
    refs = sorted({line.ref for line in lines if line.kind != "invoice"}, key=lambda r: r.tag)
    client = connections.redis_client()
    try:
        known = dict(zip(refs, ledgers.known_invoices(client, refs), strict=True))
    except RedisError as exc:
        raise QueueUnavailable(unreachable(exc, 0)) from None
    refusals: list[tuple[int, str]] = []
    for line in lines:
        if line.ref not in known:
            continue
        numbers, tracked = known[line.ref]
        if line.kind != "invoice" and numbers and line.number not in numbers:
            listed = ", ".join(sorted(numbers))
            reason = f"the order has no invoice {line.number} (its invoices: {listed})"
            refusals.append((line.line, f"{reason}; VTEX would answer 404"))
            continue
        if line.kind == "tracking" and numbers and line.number not in tracked:
            reason = f"invoice {line.number} has no tracking number yet: send the tracking number"
            refusals.append((line.line, f"{reason} first (a tracking-number job)"))
            continue
        if line.kind == "invoice":
            numbers.add(line.number)
        if line.tracks:
            tracked.add(line.number)
    return refusals


def summary(job: Job, result: Enqueued) -> dict[str, Any]:
    """What ``--json`` (CLI) and ``/relay/batch`` (intake) say of one enqueued line."""
    return {
        "jobId": result.job_id,
        "kind": job.kind,
        "account": job.account,
        "orderId": job.order_id,
        "invoiceNumber": job.invoice_number,
        "status": result.verdict,
    }
