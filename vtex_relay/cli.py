"""The ``vtex-relay`` command line.

Exit codes: 0 done; 1 Redis unreachable (nothing enqueued); 2 bad input or bad settings
(nothing enqueued). Messages go to stderr, job ids (or ``--json``) to stdout.
"""

import gc
import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, ClassVar, NoReturn

import click

from vtex_relay.errors import (
    ConfigurationError,
    FieldError,
    InvalidJob,
    InvoiceConflict,
    QueueUnavailable,
)
from vtex_relay.jobs import Job
from vtex_relay.models import Kind
from vtex_relay.operator_cli import dlq, order
from vtex_relay.ordering import Enqueued
from vtex_relay.producer import build_job, enqueue_many, invoice_conflicts, validate_batch

_MAX_REPORTED_LINES = 100

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of job ids.")
account_option = click.option("--account", help="VTEX account (default: VTEX_ACCOUNT).")
body_argument = click.argument("file", type=click.File("r"), default="-")


class _LazyGroup(click.Group):
    """Imports the sandbox command only when it runs (click's lazy-loading pattern): it pulls
    in aiohttp, which would add ~0.25 s to the start of every other command."""

    _lazy: ClassVar[dict[str, str]] = {"sandbox": "vtex_relay.sandbox.command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            command: click.Command = getattr(
                importlib.import_module(self._lazy[cmd_name]), cmd_name
            )
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="vtex-relay")
def cli() -> None:
    """Deliver invoices and tracking from an ERP to VTEX OMS, in order, once."""


@cli.group()
def enqueue() -> None:
    """Validate and enqueue jobs; print their ids."""


@enqueue.command("invoice")
@click.argument("order_id")
@body_argument
@account_option
@json_option
def enqueue_invoice(order_id: str, file: IO[str], account: str | None, as_json: bool) -> None:
    """POST an invoice (body: JSON from FILE or stdin)."""
    _enqueue_one("invoice", order_id, None, file, account, as_json)


@enqueue.command("tracking-number")
@click.argument("order_id")
@click.argument("invoice_number")
@body_argument
@account_option
@json_option
def enqueue_tracking_number(
    order_id: str, invoice_number: str, file: IO[str], account: str | None, as_json: bool
) -> None:
    """PATCH an invoice's tracking number (body: JSON from FILE or stdin)."""
    _enqueue_one("tracking-number", order_id, invoice_number, file, account, as_json)


@enqueue.command("tracking")
@click.argument("order_id")
@click.argument("invoice_number")
@body_argument
@account_option
@json_option
def enqueue_tracking(
    order_id: str, invoice_number: str, file: IO[str], account: str | None, as_json: bool
) -> None:
    """PUT tracking events of an invoice (body: JSON from FILE or stdin)."""
    _enqueue_one("tracking", order_id, invoice_number, file, account, as_json)


@enqueue.command("batch")
@click.argument("file", type=click.File("r"))
@json_option
def enqueue_batch(file: IO[str], as_json: bool) -> None:
    """Enqueue one job per JSON line of FILE (or - for stdin), all or nothing.

    Each line: {"kind", "orderId", "invoiceNumber" (updates only), "account" (optional),
    "body"}. Every line is validated before any is enqueued; jobs are enqueued in line order.
    """
    # A batch allocates millions of short-lived objects and makes few cycles: CPython's
    # default (a collection every 700 allocations) cost ~13% of a 20,000-line batch.
    gc.set_threshold(10_000)
    bad: list[str] = []
    bad_count = 0

    def on_error(number: int, exc: InvalidJob) -> None:
        nonlocal bad_count
        bad_count += 1
        if len(bad) < _MAX_REPORTED_LINES:
            bad.extend(f"  line {number}: {error}" for error in exc.errors)

    with _clean_errors(), tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        invoices = validate_batch(file, spool, on_error)
        if not bad_count:
            for number, reason in invoice_conflicts(invoices):
                on_error(number, InvalidJob([FieldError("orderId", reason)]))
        if bad_count:
            more = bad_count - min(bad_count, _MAX_REPORTED_LINES)
            tail = [f"  ... and {more} more bad line(s)"] if more else []
            _fail(2, f"{bad_count} bad line(s) in {file.name}; nothing was enqueued:", *bad, *tail)
        spool.seek(0)
        jobs = [Job.model_validate_json(text) for text in spool] if as_json else None
        if jobs is None:
            spool.seek(0)
        results = enqueue_many(
            jobs if jobs is not None else (Job.model_validate_json(t) for t in spool)
        )
    refused = [(i, r) for i, r in enumerate(results, start=1) if r.verdict == "conflict"]
    if as_json and jobs is not None:
        click.echo(json.dumps([_summary(job, r) for job, r in zip(jobs, results, strict=True)]))
    else:
        click.echo("\n".join(r.job_id for r in results if r.verdict != "conflict"))
    if refused:
        # Only a producer racing this one can cause this: the check above saw no conflict.
        _fail(2, f"{len(refused)} invoice job(s) conflicted with another producer's and were "
                 "not enqueued (all other jobs were):", *(f"  job {i}: order already has invoice "
                 f"{r.invoice_number} (job {r.job_id})" for i, r in refused))  # fmt: skip


cli.add_command(dlq)
cli.add_command(order)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="vtex-relay")


def _enqueue_one(
    kind: Kind,
    order_id: str,
    invoice_number: str | None,
    file: IO[str],
    account: str | None,
    as_json: bool,
) -> None:
    with _clean_errors():
        try:
            body = json.load(file)
        except json.JSONDecodeError as exc:
            _fail(2, f"{file.name}: the body is not JSON ({exc}); nothing was enqueued")
        job = build_job(kind, order_id, body, invoice_number=invoice_number, account=account)
        [result] = enqueue_many([job])
        if result.verdict == "conflict":
            raise InvoiceConflict(job.account, job.order_id, result.job_id,
                                  result.invoice_number or "?", result.state or "?")  # fmt: skip
    if result.verdict == "duplicate":
        click.echo(f"vtex-relay: the same invoice is already job {result.job_id}; "
                   "not enqueued again", err=True)  # fmt: skip
    click.echo(json.dumps(_summary(job, result)) if as_json else result.job_id)


def _summary(job: Job, result: Enqueued) -> dict[str, Any]:
    return {
        "jobId": result.job_id,
        "kind": job.kind,
        "account": job.account,
        "orderId": job.order_id,
        "invoiceNumber": job.invoice_number,
        "status": result.verdict,
    }


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Turn vtex-relay's errors into one clear message on stderr and an exit code."""
    try:
        yield
    except InvalidJob as exc:
        _fail(2, "invalid job; nothing was enqueued:", *(f"  {e}" for e in exc.errors))
    except ConfigurationError as exc:
        _fail(2, str(exc))
    except InvoiceConflict as exc:
        _fail(2, f"{exc}; nothing was enqueued")
    except QueueUnavailable as exc:
        _fail(1, str(exc))


def _fail(code: int, first: str, *more: str) -> NoReturn:
    click.echo("\n".join([f"vtex-relay: {first}", *more]), err=True)
    sys.exit(code)
