"""One Redis client per process for beatkeeper's own keys (locks, heartbeats, flags)."""
from __future__ import annotations

from functools import lru_cache

import redis

from tasks.infra.redis_sentinel import SentinelSettings
from tasks.infra.redis_tls import client_ssl_kwargs

CLIENT_OPTIONS = {"decode_responses": True, "health_check_interval": 10, "socket_connect_timeout": 5,
                  "socket_timeout": 10, "retry_on_timeout": True}


@lru_cache(maxsize=8)
def redis_for(url: str) -> redis.Redis:
    """A client for ``url``; redis-py's pool reconnects after fork and after a Redis restart."""
    return redis.Redis.from_url(
        url,
        **CLIENT_OPTIONS,
        **client_ssl_kwargs(url),  # rediss://: the TLS settings every client shares
    )


@lru_cache(maxsize=4)
def sentinel_master(settings: SentinelSettings) -> redis.Redis:
    """A client of the Sentinel's current master: it asks the sentinels again after a failover."""
    return settings.master_client(**CLIENT_OPTIONS)


def app_redis(app) -> redis.Redis:
    """The client for the app's configured Redis (``REDIS_URL``, or the master Sentinel names)."""
    sentinel = app.conf.get("redis_sentinel")
    if sentinel is not None:
        return sentinel_master(sentinel)
    return redis_for(app.conf.redis_url)
