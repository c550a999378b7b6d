"""The process's Redis client and ordering scripts, made once from the settings."""

from functools import lru_cache

import redis

from vtex_relay.ordering import Ordering
from vtex_relay.settings import get_settings


@lru_cache(maxsize=1)
def redis_client() -> "redis.Redis":
    """One pooled, thread-safe client; it reconnects by itself after Redis comes back."""
    return redis.Redis.from_url(
        get_settings().redis_url,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
    )


@lru_cache(maxsize=1)
def ordering() -> Ordering:
    """The ordering scripts bound to ``redis_client()``."""
    return Ordering(redis_client(), window=get_settings().dispatch_window)
