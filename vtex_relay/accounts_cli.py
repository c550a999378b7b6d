"""``vtex-relay accounts``: each account's jobs by state, its rate, and its 429 pause.

Never shows a credential: only what ``account_status`` reads (counts, rate, pause).
"""

import json

import click

from vtex_relay.account_status import AccountStatus, account_statuses
from vtex_relay.console import iso, table, utc
from vtex_relay.operator_cli import json_option, operator_client, operator_errors
from vtex_relay.settings import get_settings


@click.command("accounts")
@json_option
def accounts(as_json: bool) -> None:
    """Each account: waiting, ready, running, retrying, throttled, dead and held jobs, its
    rate limit, and whether it is paused by a 429 (until when)."""
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
