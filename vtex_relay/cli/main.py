"""The ``vtex-relay`` command line.

Exit codes: 0 done; 1 Redis unreachable or out of memory (nothing enqueued, or for a batch: a
prefix of each order's jobs, said so); 2 bad input or bad settings (nothing enqueued).
Messages go to stderr, job ids (or ``--json``) to stdout. Any input — bytes that are not
UTF-8, JSON too deep or with numbers too long to parse, a body or line of any size — ends in
one of these, never a traceback; no more than ``Settings.input_limit()`` bytes of a body or
batch line are held in memory.
"""

import gc
import importlib
import json
import tempfile
from typing import IO, ClassVar

import click

from vtex_relay.cli.backlog import accounts
from vtex_relay.cli.console import clean_errors, fail
from vtex_relay.cli.dlq import dlq, order
from vtex_relay.cli.observe import health, metrics, migrate
from vtex_relay.errors import (
    FieldError,
    InvalidJob,
)
from vtex_relay.models import Kind, parse_json
from vtex_relay.operations import operation
from vtex_relay.produce import batch
from vtex_relay.produce.api import (
    RERUN_IS_SAFE,
    accepted,
    build_job,
    enqueue_many,
    refused_by_redis,
    with_idempotency_key,
)
from vtex_relay.produce.batch import bounded_lines, summary
from vtex_relay.settings import get_settings
from vtex_relay.store.enqueuing import Enqueued

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of job ids.")
account_option = click.option("--account", help="VTEX account (default: VTEX_ACCOUNT).")
key_option = click.option(
    "--idempotency-key",
    "key",
    help="Same key, same job: enqueued once (default: the same kind, invoice and body are).",
)
# Bytes: the body is decoded as UTF-8 whatever the locale, and bad bytes are reported.
body_argument = click.argument("file", type=click.File("rb"), default="-")


class _LazyGroup(click.Group):
    """Imports the sandbox and serve commands only when they run (click's lazy-loading
    pattern): they pull in aiohttp, which every other command would otherwise pay for at its
    start. Installed without its extra (``vtex-relay[sandbox]``: aiohttp, jsonschema;
    ``vtex-relay[intake]``: aiohttp), a command says so in one line, exit 2."""

    # command -> (its module, the extra it needs)
    _lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "sandbox": ("vtex_relay.sandbox.command", "sandbox"),
        "serve": ("vtex_relay.cli.serve", "intake"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            try:
                module = importlib.import_module(self._lazy[cmd_name][0])
            except ModuleNotFoundError as exc:
                missing = (exc.name or "").partition(".")[0]
                if missing not in ("aiohttp", "jsonschema", "multidict"):
                    raise
                # Any arguments (--help too) get the hint.
                hint = f"pip install 'vtex-relay[{self._lazy[cmd_name][1]}]'"
                message = f"the {cmd_name} command needs {missing}, which is not installed: {hint}"
                return click.Command(
                    cmd_name,
                    callback=lambda: fail(2, message),
                    short_help=f"Not installed: {hint}.",
                    add_help_option=False,
                    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                )
            command: click.Command = getattr(module, cmd_name)
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
@key_option
@json_option
def enqueue_invoice(
    order_id: str, file: IO[bytes], account: str | None, key: str | None, as_json: bool
) -> None:
    """POST an invoice (body: JSON from FILE or stdin)."""
    _enqueue_one("invoice", order_id, None, file, account, key, as_json)


@enqueue.command("tracking-number")
@click.argument("order_id")
@click.argument("invoice_number")
@body_argument
@account_option
@key_option
@json_option
def enqueue_tracking_number(
    order_id: str,
    invoice_number: str,
    file: IO[bytes],
    account: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """PATCH an invoice's tracking number (body: JSON from FILE or stdin)."""
    _enqueue_one("tracking-number", order_id, invoice_number, file, account, key, as_json)


@enqueue.command("tracking")
@click.argument("order_id")
@click.argument("invoice_number")
@body_argument
@account_option
@key_option
@json_option
def enqueue_tracking(
    order_id: str,
    invoice_number: str,
    file: IO[bytes],
    account: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """PUT tracking events of an invoice (body: JSON from FILE or stdin)."""
    _enqueue_one("tracking", order_id, invoice_number, file, account, key, as_json)


@enqueue.command("batch")
@click.argument("file", type=click.File("rb"))
@json_option
def enqueue_batch(file: IO[bytes], as_json: bool) -> None:
    """Enqueue one job per JSON line of FILE (or - for stdin), all or nothing.

    Each line: {"kind", "orderId", "invoiceNumber" (updates only), "account" (optional),
    "idempotencyKey" (optional), "body"}. Every line is validated before any is enqueued;
    jobs are enqueued in line order.
    """
    # A batch allocates millions of short-lived objects and makes few cycles: CPython's
    # default (a collection every 700 allocations) spends a noticeable share of it collecting.
    gc.set_threshold(10_000)
    with clean_errors(), tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        done = batch.run(bounded_lines(file), spool, keep_jobs=as_json)
    if not done.bad and not done.lines:  # not an error, but worth a word: a wrong file?
        if as_json:
            click.echo("[]")
        click.echo(f"vtex-relay: no jobs in {_name(file)}; nothing was enqueued", err=True)
        return
    if done.bad:
        more = done.bad - min(done.bad, batch.MAX_REPORTED)
        tail = [f"  ... and {more} more bad line(s)"] if more else []
        listed = [f"  {error}" for error in done.errors]
        fail(2, f"{done.bad} bad line(s) in {_name(file)}; nothing was enqueued:", *listed, *tail)
    _report_batch(done)


def _report_batch(done: batch.Batch) -> None:
    """Job ids (or JSON) on stdout; then, if any job was left out, why, and the exit code."""
    results, jobs = done.results, done.jobs
    if jobs is not None:
        click.echo(json.dumps([summary(job, r) for job, r in zip(jobs, results, strict=True)]))
    else:
        click.echo("\n".join(r.job_id for r in results if r.verdict in ("enqueued", "duplicate")))
    failed, skipped = done.left_out("failed"), done.left_out("skipped")
    refused = done.left_out(*batch.REFUSED)
    after = [f"  {len(skipped)} later job(s) of the same orders were skipped"] if skipped else []
    if failed:
        fail(
            1,
            f"{refused_by_redis(failed[0][1].state or '')}: {len(failed)} job(s) were not "
            f"enqueued; {len(results) - len(failed) - len(skipped)} were.",
            *after,
            f"  {RERUN_IS_SAFE}",
        )
    if refused:
        # Only a producer racing this one can cause this: the checks above saw nothing wrong.
        fail(
            2,
            f"{len(refused)} job(s) were refused because of another producer's jobs and were "
            "not enqueued (all other jobs were):",
            *(f"  job {i}: {_refusal(r)}" for i, r in refused),
            *after,
        )


def _refusal(result: Enqueued) -> str:
    if result.verdict == "conflict":
        return f"order already has invoice {result.invoice_number} (job {result.job_id})"
    if result.verdict == "unknown-invoice":
        return f"the order has no such invoice (its invoices: {result.state})"
    return "its invoice has no tracking number yet"


cli.add_command(dlq)
cli.add_command(order)
cli.add_command(accounts)
cli.add_command(health)
cli.add_command(metrics)
cli.add_command(migrate)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="vtex-relay")


def _enqueue_one(
    kind: Kind,
    order_id: str,
    invoice_number: str | None,
    file: IO[bytes],
    account: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    with clean_errors():
        body = _read_body(file)
        job = build_job(kind, order_id, body, invoice_number=invoice_number, account=account)
        job = with_idempotency_key(job, key)
        [result] = enqueue_many([job])
        result = accepted(job, result)
    if result.verdict == "duplicate":
        what = "invoice" if operation(kind).posts_invoice else "job"
        click.echo(
            f"vtex-relay: the same {what} is already job {result.job_id}; not enqueued again",
            err=True,
        )
    click.echo(json.dumps(summary(job, result)) if as_json else result.job_id)


def _read_body(file: IO[bytes]) -> object:
    """The parsed body; a body too large, not UTF-8 or not parsable exits 2."""
    limit = get_settings().input_limit()
    data = file.read(limit + 1)
    if len(data) > limit:
        reason = f"{_name(file)} is over {limit:,} bytes, the most read (4 times MAX_BODY_BYTES)"
        raise InvalidJob([FieldError("body", reason)])
    try:
        return parse_json(data)
    except ValueError as exc:
        fail(2, f"{_name(file)}: the body is {exc}; nothing was enqueued")


def _name(file: IO[bytes]) -> str:
    # Standard input has no name in click's test runner.
    return str(getattr(file, "name", "<stdin>"))
