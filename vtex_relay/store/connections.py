"""The process's Redis client and ordering scripts, made once from the settings.

``REDIS_URL`` is a Redis URL (``redis://``, ``rediss://``, ``unix://``), or Redis Sentinel's in
kombu's form, ``sentinel://host1:26379;sentinel://host2:26379/0``, with the primary's service
name in ``REDIS_SENTINEL_MASTER``: the same setting then serves the Celery broker (kombu) and
vtex-relay's own client (redis-py's ``Sentinel``), and both follow the primary after a failover
without a restart. The first use checks that this Redis is one vtex-relay can run on
(``preflight``).
"""

from functools import lru_cache
from typing import Any

import redis
from redis.sentinel import Sentinel

from vtex_relay.settings import Settings, get_settings
from vtex_relay.store import preflight
from vtex_relay.store.ordering import Ordering


def client_for(settings: Settings, **options: Any) -> "redis.Redis":
    """A client of *settings*' Redis (its primary, through Sentinel); *options* are redis-py's
    (time-outs)."""
    sentinels = settings.sentinels()
    if sentinels is None:
        return redis.Redis.from_url(settings.redis_url, **options)
    hosts, db, password = sentinels
    secret = settings.redis_sentinel_password
    sentinel_kwargs = {"password": secret.get_secret_value()} if secret else {}
    master = settings.redis_sentinel_master or ""
    sentinel = Sentinel(hosts, sentinel_kwargs={**options, **sentinel_kwargs}, **options)
    client: redis.Redis = sentinel.master_for(master, db=db, password=password, **options)
    return client


@lru_cache(maxsize=1)
def redis_client() -> "redis.Redis":
    """One pooled, thread-safe client; it reconnects by itself after Redis comes back (or a
    new primary is promoted)."""
    return client_for(
        get_settings(), socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
    )


@lru_cache(maxsize=1)
def ordering() -> Ordering:
    """The ordering scripts bound to ``redis_client()``, once the Redis passed ``preflight``."""
    settings = get_settings()
    client = redis_client()
    preflight.check(client, settings)
    return Ordering(
        client,
        window=settings.dispatch_window,
        wait_replicas=settings.enqueue_wait_replicas,
        wait_timeout_ms=settings.enqueue_wait_timeout_ms,
        wait_aof=settings.enqueue_wait_aof,
    )
