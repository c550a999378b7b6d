"""Is the relay working? Redis answers, a worker's heartbeat is fresh, the sweep ran lately.

Each worker's sweep records its heartbeat in Redis (``vr:workers``, at least every 10 s) and
the time of the sweep (``vr:swept``), so this reads two keys: no broadcast to the workers
(``celery inspect ping`` would cost every worker a reply per probe). A worker stopped or
frozen is no longer counted live ``HEARTBEAT_TIMEOUT`` (30 s) after its last sweep, and the
sweep is late when none ran for as long.
"""

from dataclasses import dataclass, field

import redis

from vtex_relay.store import keys
from vtex_relay.store.keys import text


@dataclass(frozen=True)
class Worker:
    name: str
    age: float  # seconds since its last heartbeat
    live: bool


@dataclass(frozen=True)
class Health:
    """What was found; ``problems`` names each failed check (none: healthy)."""

    redis: bool
    workers: list[Worker] = field(default_factory=list)
    sweep_age: float | None = None  # seconds since the last sweep (None: never)
    problems: list[str] = field(default_factory=list)


def check(client: "redis.Redis", fresh: float, worker: str | None = None) -> Health:
    """The relay's health as Redis shows it: a worker (*worker*, else any) must have sent a
    heartbeat and a sweep must have run within *fresh* seconds."""
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(keys.WORKERS, 0, -1, withscores=True)
            pipe.get(keys.SWEPT)
            (seconds, micros), beats, swept = pipe.execute()
    except redis.RedisError as exc:
        return Health(redis=False, problems=[f"Redis does not answer ({type(exc).__name__})"])
    now = seconds + micros / 1e6
    ages = ((text(name), max(now - beat, 0.0)) for name, beat in beats)
    workers = sorted((Worker(name, age, age <= fresh) for name, age in ages), key=_age)
    sweep_age = max(now - float(swept), 0.0) if swept else None
    problems = []
    if worker is not None:
        found = next((w for w in workers if w.name == worker), None)
        if found is None:
            problems.append(f"worker {worker} has never sent a heartbeat")
        elif not found.live:
            problems.append(f"worker {worker} last seen {found.age:.0f} s ago")
    elif not any(w.live for w in workers):
        seen = ", ".join(f"{w.name} {w.age:.0f} s ago" for w in workers) or "none ever"
        problems.append(f"no live worker (last seen: {seen})")
    if sweep_age is None:
        problems.append("no sweep has ever run")
    elif sweep_age > fresh:
        problems.append(f"the last sweep ran {sweep_age:.0f} s ago")
    return Health(True, workers, sweep_age, problems)


def _age(worker: Worker) -> float:
    return worker.age
