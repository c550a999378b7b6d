"""Before a worker, a producer or the intake writes anything: is this Redis one vtex-relay can
keep its promises on?

- **Redis 7.0 or newer**: the scripts are a function library (``FUNCTION LOAD``, ``FCALL``),
  which older servers do not have; ``ENQUEUE_WAIT_AOF`` needs 7.2 (``WAITAOF``).
- **No eviction** (``maxmemory-policy noeviction``): under any other policy Redis deletes keys
  when it is full (a job, an account's window, an order's invoice ledger) and nothing says so.
- **The key layout's version** (``vr:layout``): data written by another version is not read as
  if it were this one's. A Redis with vtex-relay data but no stamp holds the previous layout:
  ``vtex-relay migrate`` brings it to this one. (The enqueue script stamps an empty Redis, and
  refuses to write to another layout itself.)

Each refusal is one line (``ConfigurationError``) saying what to do; the check writes nothing.
The reads are INFO and two keys: no special permission (CONFIG is often disabled).
"""

import redis

from vtex_relay.errors import ConfigurationError
from vtex_relay.settings import Settings
from vtex_relay.store import keys
from vtex_relay.store.keys import text

LAYOUT = keys.LAYOUT_VERSION
MIN_VERSION = (7, 0)
WAITAOF_VERSION = (7, 2)


def check(client: "redis.Redis", settings: Settings) -> None:
    """Refuse (``ConfigurationError``) a Redis vtex-relay must not run on; stamp an empty one.
    ``redis.RedisError`` if Redis cannot be reached."""
    with client.pipeline(transaction=False) as pipe:
        pipe.info("server")
        pipe.info("memory")
        pipe.get(keys.LAYOUT)
        pipe.exists(keys.ACCOUNTS)
        server, memory, stamp, has_data = pipe.execute()
    shown = str(server.get("redis_version", "?"))
    version = _version(shown)
    if version < MIN_VERSION:
        raise ConfigurationError(
            f"Redis {shown} is too old: vtex-relay needs Redis 7.0 or newer (its scripts "
            "are a function library); upgrade Redis"
        )
    if settings.enqueue_wait_aof and version < WAITAOF_VERSION:
        raise ConfigurationError(
            f"ENQUEUE_WAIT_AOF needs Redis 7.2 or newer (WAITAOF); this Redis is {shown}: "
            "upgrade Redis or set ENQUEUE_WAIT_AOF=false"
        )
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise ConfigurationError(
            f"Redis evicts keys when full (maxmemory-policy {policy}): vtex-relay would lose "
            "jobs and ledgers without a word; set maxmemory-policy noeviction"
        )
    if stamp is None:
        # An empty Redis: the first job enqueued stamps it (enqueue.lua), so that a Redis that
        # lost its data is stamped again by whoever writes first.
        if has_data:
            raise ConfigurationError(
                "Redis holds vtex-relay data of an earlier layout (no layout stamp): run "
                "`vtex-relay migrate` once, with every worker, producer and intake stopped"
            )
    elif text(stamp) != str(LAYOUT):
        raise ConfigurationError(
            f"Redis holds vtex-relay data of layout {text(stamp)}, and this version reads "
            f"layout {LAYOUT}: run the version that wrote it until the queue is drained, or "
            "`vtex-relay migrate` if it names that layout"
        )


def _version(shown: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in shown.split(".")[:2])
    except ValueError:
        return (0,)
