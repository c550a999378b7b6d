"""Each account's jobs by state, its rate and its 429 pause: ``vtex-relay accounts``.

The scripts keep a count per account and state (``vr:account:ACCOUNT:jobs``, see
``common.lua``; waiting and ready jobs are its line's length and its window's size), so this
reads a few small keys per account, however large its backlog.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from vtex_relay import keys
from vtex_relay.keys import text
from vtex_relay.settings import Rate, Settings


@dataclass(frozen=True)
class AccountStatus:
    """One account: its live jobs by state, its rate limit, and its pause if one runs.

    ``waiting``: jobs not yet given a message (behind their order's earlier jobs, or in the
    account's line for its window, rate or pause), except ``held`` ones: behind a dead job,
    waiting for an operator. ``retrying``: failed tries waiting for their backoff;
    ``throttled``: jobs parked by the rate limit or a pause, not tried yet.
    """

    account: str
    waiting: int
    ready: int
    running: int
    retrying: int
    throttled: int
    dead: int
    held: int
    rate: Rate
    paused_until: datetime | None


def account_statuses(client: "redis.Redis", settings: Settings) -> list[AccountStatus]:
    """Every configured account and every account with jobs in Redis, by name."""
    seen = {text(name) for name in client.smembers(keys.ACCOUNTS)}
    names = sorted(set(_configured(settings)) | seen)
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        for name in names:
            pipe.hgetall(keys.account(name, "jobs"))
            pipe.get(keys.account(name, "pause"))
            pipe.llen(keys.account(name, "line"))
            pipe.scard(keys.account(name, "out"))
        replies = pipe.execute()
    seconds, micros = replies[0]
    now = seconds + micros / 1e6
    statuses = []
    for index, name in enumerate(names):
        counts, pause, in_line, out = replies[1 + 4 * index : 5 + 4 * index]
        statuses.append(_status(name, counts, pause, in_line, out, settings.rate_for(name), now))
    return statuses


def _configured(settings: Settings) -> Iterable[str]:
    yield from settings.configured()
    if settings.vtex_account:
        yield settings.vtex_account


def _status(
    name: str,
    raw: dict[bytes, bytes],
    pause: bytes | None,
    in_line: int,
    out: int,
    rate: Rate,
    now: float,
) -> AccountStatus:
    counts = {text(k): int(v) for k, v in raw.items()}
    held = counts.get("held", 0)
    until = float(pause) if pause else 0.0
    return AccountStatus(
        account=name,
        waiting=counts.get("queued", 0) - held + in_line,
        ready=out,
        running=counts.get("running", 0),
        retrying=counts.get("retrying", 0),
        throttled=counts.get("throttled", 0),
        dead=counts.get("dead", 0),
        held=held,
        rate=rate,
        paused_until=datetime.fromtimestamp(until, UTC) if until > now else None,
    )
