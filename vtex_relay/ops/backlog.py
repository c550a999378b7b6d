"""Each account's jobs by state, its rate and its 429 pause: ``vtex-relay accounts``.

The scripts keep a count per account and state (``vr:account:ACCOUNT:jobs``, see
``common.lua``; waiting and ready jobs are its line's length and its window's size), so this
reads a few small keys per account, however large its backlog.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from vtex_relay.settings import Rate, Settings
from vtex_relay.store import keys
from vtex_relay.store.keys import text


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


@dataclass(frozen=True)
class Resumed:
    """What ``resume`` did: the pause it ended (None: there was none) and how many of the
    account's parked jobs (throttled, or waiting for a retry) it made due at once."""

    paused_until: datetime | None
    released: int


def resume(client: "redis.Redis", account: str) -> Resumed:
    """End *account*'s 429 pause, if one runs, and make its parked jobs due now, so that the
    sweep gives them their turn back at once (an operator who knows VTEX is answering again
    need not wait out a long ``Retry-After``). Reads the delayed set with ZSCAN, so the cost
    is in the number of parked jobs of every account; it is an operator's command."""
    pause_key = keys.account(account, "pause")
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.get(pause_key)
        pipe.delete(pause_key)
        (seconds, micros), pause, _ = pipe.execute()
    now = seconds + micros / 1e6
    until = float(pause) if pause else 0.0
    tag = f"{account}:"  # a member is "ACCOUNT:ORDER JOB_ID" (OrderRef.member)
    parked = [
        member
        for member, due in client.zscan_iter(keys.DELAYED, match=_glob(tag) + "*", count=1000)
        if due > now and text(member).startswith(tag)
    ]
    with client.pipeline(transaction=False) as pipe:
        if parked:
            # XX: a job claimed or swept meanwhile has left the set and is not put back.
            pipe.zadd(keys.DELAYED, dict.fromkeys(parked, now), xx=True)
        pipe.zadd(keys.LINES, {account: now}, xx=True)  # its line, if it waits on the pause
        pipe.execute()
    return Resumed(datetime.fromtimestamp(until, UTC) if until > now else None, len(parked))


def _glob(text: str) -> str:
    """*text* as a literal in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
