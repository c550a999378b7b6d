"""``vtex-relay accounts``: each account's jobs by state, its rate, and its 429 pause;
``vtex-relay accounts resume NAME`` ends a pause.

Never shows a credential: only what ``account_status`` reads (counts, rate, pause).
"""

import json

import click

from vtex_relay.cli.console import fail, table, utc
from vtex_relay.cli.dlq import json_option, operator_client, operator_errors
from vtex_relay.identifiers import check_account
from vtex_relay.ops.backlog import AccountStatus, account_statuses, resume
from vtex_relay.ops.views import iso
from vtex_relay.settings import get_settings
from vtex_relay.store import keys


@click.group("accounts", invoke_without_command=True)
@json_option
@click.pass_context
def accounts(ctx: click.Context, as_json: bool) -> None:
    """Each account: waiting, ready, running, retrying, throttled, dead and held jobs, its
    rate limit, and whether it is paused by a 429 (until when)."""
    if ctx.invoked_subcommand is not None:
        return
    with operator_errors():
        statuses = account_statuses(operator_client(), get_settings())
    if as_json:
        click.echo(json.dumps([_json(status) for status in statuses]))
    elif not statuses:
        click.echo("no accounts: none configured and none with jobs")
    else:
        headers = ["ACCOUNT", "WAITING", "READY", "RUNNING", "RETRYING", "THROTTLED", "DEAD"]
        headers += ["HELD", "RATE", "PAUSED UNTIL"]
        click.echo(table(headers, [_row(status) for status in statuses]))


@accounts.command("resume")
@click.argument("name")
def resume_command(name: str) -> None:
    """End account NAME's 429 pause now; its parked jobs (throttled, or waiting for a retry)
    are due at once. Pauses end by themselves too, after at most VTEX_429_PAUSE_MAX."""
    try:
        account = check_account(name)
    except ValueError as exc:
        fail(2, f"invalid account: {exc}")
    with operator_errors():
        settings = get_settings()
        client = operator_client()
        if not settings.knows(account) and not client.sismember(keys.ACCOUNTS, account):
            fail(2, f"unknown account {account}: not configured, and no jobs in Redis")
        done = resume(client, account)
    was = f"pause until {utc(done.paused_until)} ended" if done.paused_until else "was not paused"
    click.echo(f"{account}: {was}; {done.released:,} parked job(s) due now")


def _row(s: AccountStatus) -> list[str]:
    counts = (s.waiting, s.ready, s.running, s.retrying, s.throttled, s.dead, s.held)
    rate = f"{s.rate.rate:g}/s, burst {s.rate.burst:g}" if s.rate.rate else "no limit"
    return [s.account, *(f"{n:,}" for n in counts), rate, utc(s.paused_until)]


def _json(s: AccountStatus) -> dict[str, object]:
    return {
        "account": s.account,
        "waiting": s.waiting,
        "ready": s.ready,
        "running": s.running,
        "retrying": s.retrying,
        "throttled": s.throttled,
        "dead": s.dead,
        "held": s.held,
        "rate": s.rate.rate,
        "burst": s.rate.burst,
        "paused": s.paused_until is not None,
        "pausedUntil": iso(s.paused_until),
    }
