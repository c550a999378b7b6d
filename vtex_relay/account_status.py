"""Each account's jobs by state, its rate and its 429 pause: ``vtex-relay accounts``.

The scripts keep a count per account and state (``vr:account:ACCOUNT:jobs``, see
``common.lua``), so this reads two small keys per account, however large its backlog.
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
    names = sorted(set(_configured(settings)) | set(_in_redis(client)))
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        for name in names:
            pipe.hgetall(keys.account(name, "jobs"))
            pipe.get(keys.account(name, "pause"))
        replies = pipe.execute()
    seconds, micros = replies[0]
    now = seconds + micros / 1e6
    return [
        _status(name, counts, pause, settings.rate_for(name), now)
        for name, counts, pause in zip(names, replies[1::2], replies[2::2], strict=True)
    ]


def _configured(settings: Settings) -> Iterable[str]:
    yield from settings.configured()
    if settings.vtex_account:
        yield settings.vtex_account


def _in_redis(client: "redis.Redis") -> Iterable[str]:
    pattern = keys.account("*", "jobs")
    prefix, suffix = pattern.split("*")
    for key in client.scan_iter(match=pattern, count=1000):
        yield text(key)[len(prefix) : -len(suffix)]


def _status(
    name: str, raw: dict[bytes, bytes], pause: bytes | None, rate: Rate, now: float
) -> AccountStatus:
    counts = {text(k): int(v) for k, v in raw.items()}
    held = counts.get("held", 0)
    until = float(pause) if pause else 0.0
    return AccountStatus(
        account=name,
        waiting=counts.get("queued", 0) - held + counts.get("waiting", 0),
        ready=counts.get("ready", 0),
        running=counts.get("running", 0),
        retrying=counts.get("retrying", 0),
        throttled=counts.get("throttled", 0),
        dead=counts.get("dead", 0),
        held=held,
        rate=rate,
        paused_until=datetime.fromtimestamp(until, UTC) if until > now else None,
    )
