"""Batches: JSON lines, all or nothing, in one flow that ``vtex-relay enqueue batch`` and the
intake's ``POST /relay/batch`` only render: validate every line, check every good one with the
enqueue script's own rules (``Ordering.check``: the same script, nothing written), then, only
if no line is bad, enqueue them all in line order and report what each became.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from redis.exceptions import RedisError

from vtex_relay.errors import FieldError, InvalidJob, QueueUnavailable
from vtex_relay.jobs import Job
from vtex_relay.models import parse_json
from vtex_relay.produce.api import (
    build_job,
    enqueue_many,
    idempotency_key_errors,
    refused_by_redis,
    unreachable,
    with_idempotency_key,
)
from vtex_relay.settings import get_settings
from vtex_relay.store import connections
from vtex_relay.store.enqueuing import Enqueued
from vtex_relay.store.ordering import Ordering

LINE_FIELDS = frozenset({"kind", "orderId", "invoiceNumber", "account", "idempotencyKey", "body"})
MAX_REPORTED = 100  # bad lines listed in one report; the rest are counted
# Verdicts that leave a job out because of another job (an invoice, a missing one).
REFUSED = ("conflict", "unknown-invoice", "untracked")


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


@dataclass
class Batch:
    """What a batch became. ``errors``: the first ``MAX_REPORTED`` bad lines' errors, each
    located ``line N: field``; ``bad``: how many lines were bad, ``hidden``: errors not listed.
    Nothing was enqueued if any line was bad; else ``results`` holds each job's ``Enqueued``
    (and ``jobs`` the jobs, when asked to keep them)."""

    errors: list[FieldError] = field(default_factory=list)
    bad: int = 0
    hidden: int = 0
    lines: int = 0
    results: list[Enqueued] = field(default_factory=list)
    jobs: list[Job] | None = None

    def refuse(self, number: int, exc: InvalidJob) -> None:
        self.bad += 1
        if self.bad <= MAX_REPORTED:
            self.errors.extend(
                FieldError(f"line {number}: {e.location}", e.message) for e in exc.errors
            )
            self.hidden += exc.not_listed

    def left_out(self, *verdicts: str) -> list[tuple[int, Enqueued]]:
        """(job number from 1, result) of each job whose verdict is one of *verdicts*."""
        return [(i, r) for i, r in enumerate(self.results, start=1) if r.verdict in verdicts]


def run(
    lines: Iterable[bytes | str],
    spool: IO[str],
    *,
    keep_jobs: bool = False,
    allow: Callable[[Job], str | None] | None = None,
) -> Batch:
    """The batch of JSON *lines*: validated (each good job written to *spool*), checked, then
    enqueued if no line is bad. *allow* may refuse a good job: the reason (about its
    ``account``), or None. ``QueueUnavailable`` if Redis cannot be reached."""
    batch = Batch()
    good: list[tuple[int, dict[str, Any]]] = []  # (line, the job as the script takes it)
    for number, job in _validated(lines, batch):
        reason = allow(job) if allow else None
        if reason is not None:
            batch.refuse(number, InvalidJob([FieldError("account", reason)]))
            continue
        named = Ordering.named(job, "")
        good.append((number, named))
        spool.write(job.model_dump_json())
        spool.write("\n")
    batch.lines = len(good)
    if not batch.bad:
        _check(good, batch)
    if batch.bad or not good:
        return batch
    spool.seek(0)
    jobs = [Job.model_validate_json(text) for text in spool] if keep_jobs else None
    spool.seek(0)
    batch.jobs = jobs
    batch.results = enqueue_many(jobs or (Job.model_validate_json(text) for text in spool))
    return batch


def _validated(lines: Iterable[bytes | str], batch: Batch) -> Iterator[tuple[int, Job]]:
    """Each good line's job, by its number; a bad line is refused, never an exception, whatever
    its bytes: not UTF-8, not JSON, too deep or a number too long to parse, or over
    ``Settings.input_limit()``. Blank lines are skipped."""
    limit = get_settings().input_limit()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if len(text) > limit and len(_without_end(text)) > limit:
            reason = f"over {limit:,} bytes, the most read for a line (4 times MAX_BODY_BYTES)"
            batch.refuse(number, InvalidJob([FieldError("line", reason)]))
            continue
        try:
            data = parse_json(text)
            if not isinstance(data, dict):
                raise InvalidJob([FieldError("line", "must be a JSON object")])
            yield number, job_from_line(data)
        except ValueError as exc:
            batch.refuse(number, InvalidJob([FieldError("line", str(exc))]))
        except InvalidJob as exc:
            batch.refuse(number, exc)


def _check(good: list[tuple[int, dict[str, Any]]], batch: Batch) -> None:
    """Refuse each line the enqueue script would refuse, with the lines before it enqueued."""
    try:
        verdicts = connections.ordering().check([named for _number, named in good])
    except RedisError as exc:
        raise QueueUnavailable(unreachable(exc, 0)) from None
    line_of = {named["id"]: number for number, named in good}
    for (number, named), result in zip(good, verdicts, strict=True):
        if result.verdict == "failed":
            raise QueueUnavailable(f"{refused_by_redis(result.state or '')}; nothing was enqueued")
        if result.verdict in REFUSED:
            batch.refuse(number, InvalidJob([_refusal(named, result, line_of)]))


def _refusal(named: Mapping[str, Any], result: Enqueued, line_of: Mapping[str, int]) -> FieldError:
    number, holder = named["number"], result.job_id
    if result.verdict == "unknown-invoice":
        listed = ", ".join(sorted((result.state or "").split()))
        reason = f"the order has no invoice {number} (its invoices: {listed})"
        return FieldError("invoiceNumber", f"{reason}; VTEX would answer 404")
    if result.verdict == "untracked":
        reason = f"invoice {number} has no tracking number yet: send the tracking number"
        return FieldError("invoiceNumber", f"{reason} first (a tracking-number job)")
    same_number = result.invoice_number == number
    if holder in line_of:
        if same_number:
            reason = f"a different invoice under number {number} is on line {line_of[holder]}"
            return FieldError("orderId", f"{reason} (each invoice number once)")
        reason = f"a different invoice for this order is on line {line_of[holder]}"
        return FieldError("orderId", f"{reason} (one invoice per order)")
    if same_number:
        reason = f"invoice number {number} is already a different invoice"
        return FieldError("orderId", f"{reason} (job {holder}, {result.state})")
    reason = f"the order already has invoice {result.invoice_number} (job {holder}, {result.state})"
    return FieldError("orderId", f"{reason}; one invoice per order")


def _without_end(line: bytes | str) -> bytes | str:
    return line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n")


def bounded_lines(file: IO[bytes]) -> Iterator[bytes]:
    """The lines of *file*, each cut after a little more than ``input_limit()`` bytes (the rest
    of a longer line is skipped, not read into memory): ``run`` refuses it."""
    keep = get_settings().input_limit() + 3  # more than run allows a line
    while line := file.readline(keep):
        if len(line) == keep and not line.endswith(b"\n"):
            while (rest := file.readline(65_536)) and not rest.endswith(b"\n"):
                pass
        yield line


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
