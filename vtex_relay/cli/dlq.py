"""Operator commands: ``vtex-relay dlq list|show|replay|discard`` and ``vtex-relay order``.

``vtex_relay.cli.main`` attaches ``dlq`` and ``order`` to the ``vtex-relay`` group. Output goes to
stdout (aligned text, or JSON with ``--json``); errors are one line on stderr, with exit code 2
for an unknown job or order, a job that is not dead, or bad input or settings, and 1 when Redis
cannot be reached. Times are UTC.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click
import redis

from vtex_relay.cli.console import cents, clean_errors, cut, fail, indent, table, utc
from vtex_relay.errors import JobNotDead, QueueUnavailable, UnknownJob, UnknownOrder
from vtex_relay.identifiers import check_account, check_order_id
from vtex_relay.ops import dead_letters
from vtex_relay.ops.dead_letters import JobRecord
from vtex_relay.ops.views import job_json, order_json
from vtex_relay.settings import get_settings
from vtex_relay.store import connections
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.ordering import Ordering

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group()
def dlq() -> None:
    """Dead jobs: failed for good, each holding its order until replayed or discarded."""


@dlq.command("list")
@json_option
def dlq_list(as_json: bool) -> None:
    """List dead jobs, the one that died first first."""
    with operator_errors():
        jobs = dead_letters.list_dead(operator_client())
    if as_json:
        click.echo(json.dumps([job_json(job) for job in jobs]))
    elif not jobs:
        click.echo("no dead jobs")
    else:
        rows = [
            [
                job.job_id,
                f"{job.account}/{job.order_id}",
                job.kind or "",
                str(job.tries),
                utc(job.attempts[-1].at if job.attempts else None),
                cut(job.last_error_line),
            ]
            for job in jobs
        ]
        click.echo(table(["JOB ID", "ORDER", "KIND", "TRIES", "DIED AT", "LAST ERROR"], rows))


@dlq.command("show")
@click.argument("job_id")
@json_option
def dlq_show(job_id: str, as_json: bool) -> None:
    """Show a dead or discarded job: its order, body and every attempt."""
    with operator_errors():
        job = dead_letters.show(operator_client(), job_id)
    if as_json:
        click.echo(json.dumps(job_json(job, body=True, attempts=True)))
    else:
        click.echo(_job_block(job))


@dlq.command("replay")
@click.argument("job_id")
def dlq_replay(job_id: str) -> None:
    """Run a dead job again, at its place in its order, with a fresh count of tries."""
    with operator_errors(written=job_id):
        client = operator_client()
        ref = dead_letters.replay(Ordering(client), client, job_id)
    click.echo(f"replayed job {job_id}: order {_name(ref)} is active again")


@dlq.command("discard")
@click.argument("job_id")
def dlq_discard(job_id: str) -> None:
    """Give up on a dead job (its record stays) and release its order's next job."""
    with operator_errors(written=job_id):
        client = operator_client()
        ref = dead_letters.discard(Ordering(client), client, job_id)
        status = dead_letters.order_status(client, ref)
    if status.state == "idle":
        after = "the order has no other job and is idle"
    else:
        head = next((job for job in status.jobs if job.seq == status.head), None)
        after = f"released the order's next job (seq {status.head}, {head.job_id if head else '?'})"
    click.echo(f"discarded job {job_id} of order {_name(ref)}; {after}")


@click.command("order")
@click.argument("order_id")
@click.option("--account", help="VTEX account (default: VTEX_ACCOUNT).")
@json_option
def order(order_id: str, account: str | None, as_json: bool) -> None:
    """Show an order's state and its jobs in sequence (jobs behind a dead one are "held")."""
    with operator_errors():
        ref = _order_ref(order_id, account)
        status = dead_letters.order_status(operator_client(), ref)
    if as_json:
        click.echo(json.dumps(order_json(ref, status)))
        return
    head = f" at seq {status.head}" if status.head else ""
    lines = [f"order {_name(ref)}: {status.state}{head}", ""]
    rows = [
        [
            str(job.seq or ""),
            job.job_id,
            job.kind or "",
            job.state,
            str(job.tries),
            utc(job.due_at),
            cut(job.last_error_line),
        ]
        for job in status.jobs
    ]
    lines.append(table(["SEQ", "JOB ID", "KIND", "STATE", "TRIES", "DUE AT", "LAST ERROR"], rows))
    if status.vtex is not None:
        seen = status.vtex
        lines += [
            "",
            f"VTEX, as read at {seen.get('readAt')}: status {seen.get('status')}; invoiced "
            f"{cents(seen.get('invoiced'))} of {cents(seen.get('value'))}"
            + (f", returned {cents(seen.get('returned'))}" if seen.get("returned") else ""),
        ]
    if status.invoices:
        invoices = [
            [i.number, i.type, f"{i.value:,}" if i.value is not None else "", i.state]
            for i in status.invoices
        ]
        lines += ["", table(["INVOICE", "TYPE", "VALUE", "STATE"], invoices)]
    lines += [
        f"\njob {j.job_id} is dead: see `vtex-relay dlq show {j.job_id}`"
        for j in status.jobs
        if j.state == "dead"
    ]
    click.echo("\n".join(lines))


@contextmanager
def operator_errors(written: str | None = None) -> Iterator[None]:
    """Exit with one clear line: 2 for an unknown or not-dead job, 1 for Redis unreachable.

    *written* names the job a command changes: if Redis goes away mid-call, it may or may not
    have been changed, and the message says how to find out.
    """
    with clean_errors():
        try:
            yield
        except (UnknownJob, JobNotDead, UnknownOrder) as exc:
            fail(2, str(exc))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            url = get_settings().shown_redis_url()
            check = f"; check `vtex-relay dlq show {written}` to see if it was" if written else ""
            raise QueueUnavailable(f"cannot reach Redis at {url} ({exc}){check}") from None


def operator_client() -> "redis.Redis":
    # Short time-outs: an operator should hear that Redis is down, not wait for it.
    return connections.client_for(get_settings(), socket_connect_timeout=5, socket_timeout=10)


def _order_ref(order_id: str, account: str | None) -> OrderRef:
    account = account or get_settings().vtex_account
    if account is None:
        fail(2, "no account: give --account or set VTEX_ACCOUNT")
    checked: list[str] = []  # the checked values: the account in lower case, as enqueued
    for what, value, check in (
        ("account", account, check_account),
        ("order id", order_id, check_order_id),
    ):
        try:
            checked.append(check(value))
        except ValueError as exc:
            fail(2, f"invalid {what} {value!r}: {exc}")
    account, order_id = checked
    return OrderRef(account, order_id)


def _job_block(job: JobRecord) -> str:
    where = _name(OrderRef(job.account, job.order_id)) + (f" (seq {job.seq})" if job.seq else "")
    facts = [
        ("job", job.job_id),
        ("state", job.state),
        ("order", where),
        ("kind", job.kind or ""),
        ("invoice", job.invoice_number or ""),
        ("tries", str(job.tries)),
        ("enqueued", utc(job.enqueued_at)),
        ("last error", job.last_error_line),
    ]
    lines = [f"{name + ':':<11} {value}" for name, value in facts if value]
    lines += ["body:", *indent(json.dumps(job.body, indent=2, ensure_ascii=False))]
    lines.append(f"attempts ({len(job.attempts)}):")
    rows = [
        [
            str(n),
            utc(a.at),
            a.outcome,
            str(a.status or ""),
            a.worker,
            ("maybe applied; " if a.maybe_applied else "") + " ".join(a.message.split()),
        ]
        for n, a in enumerate(job.attempts, start=1)
    ]
    if rows:
        lines += indent(table(["#", "AT", "OUTCOME", "STATUS", "WORKER", "MESSAGE"], rows))
    if job.state == "dead":
        lines += [
            f"to replay:  vtex-relay dlq replay {job.job_id}",
            f"to discard: vtex-relay dlq discard {job.job_id}",
        ]
    return "\n".join(lines)


def _name(ref: OrderRef) -> str:
    return f"{ref.account}/{ref.order_id}"
