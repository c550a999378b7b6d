"""``vtex-relay migrate``: bring a Redis written by the previous version to this layout.

Layout 1 (no stamp) to 2: layout 2 adds, for the metrics, each account's orders with a live
head by the head's enqueue time (``vr:account:A:heads``), counters (``vr:account:A:stats``, which
start at 0) and a job's enqueue time (``t``; a job without one counts from the migration). So
each order whose head is live gets its place among its account's heads, then the stamp is set.
Data from before fair share (a job holding a prebuilt ``message``) cannot be migrated: drain it
with that version. Run it once, with every worker, producer and intake stopped; it reads every
order key (SCAN), so it takes a while on a large Redis, and running it again does no harm.
"""

import redis

from vtex_relay.errors import ConfigurationError
from vtex_relay.store import keys
from vtex_relay.store.keys import OrderRef, text
from vtex_relay.store.preflight import LAYOUT


def migrate(client: "redis.Redis") -> str:
    """Migrate to ``LAYOUT``; return what was done. ``ConfigurationError`` (nothing written)
    for data this version cannot migrate."""
    stamp = client.get(keys.LAYOUT)
    if stamp is not None and text(stamp) == str(LAYOUT):
        return f"already at layout {LAYOUT}: nothing to do"
    if stamp is not None:
        raise ConfigurationError(f"no migration from layout {text(stamp)} to {LAYOUT}")
    if not client.exists(keys.ACCOUNTS):
        client.set(keys.LAYOUT, LAYOUT)
        return f"no vtex-relay data yet: stamped layout {LAYOUT}"
    for key in client.scan_iter(match=f"{keys.PREFIX}:{{*}}:job:*", count=1000, _type="hash"):
        if client.hexists(key, "message"):
            raise ConfigurationError(
                "Redis holds jobs from before fair share (a prebuilt message): drain them with "
                "the version that wrote them; nothing was migrated"
            )
    now = float(client.time()[0])
    heads = 0
    for key in client.scan_iter(match=f"{keys.PREFIX}:{{*}}:order", count=1000):
        tag = text(key)[len(keys.PREFIX) + 2 : -len("}:order")]
        order = client.hmget(key, "state", "head")
        if text(order[0] or b"") != "active":
            continue  # idle, or held behind a dead job: not a live head
        ref = OrderRef.parse(tag)
        job_id = client.hget(ref.key("seqs"), text(order[1] or b"0"))
        if job_id is None:
            continue
        enqueued = client.hget(ref.job_key(text(job_id)), "t")
        score = float(enqueued) if enqueued is not None else now
        client.zadd(keys.account(ref.account, "heads"), {tag: score})
        heads += 1
    client.set(keys.LAYOUT, LAYOUT)
    return f"migrated to layout {LAYOUT}: {heads} live order head(s) indexed"
