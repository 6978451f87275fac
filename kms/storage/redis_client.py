"""Redis connections from the ``redis`` settings of a node."""

from __future__ import annotations

import redis

#: URL schemes a node's ``redis.url`` may use.
REDIS_URL_SCHEMES = ("redis", "rediss", "unix")


def redis_client(url: str) -> redis.Redis:
    """A binary-safe client with bounded timeouts, for ``redis://``, ``rediss://`` or ``unix://``."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                health_check_interval=30, retry_on_timeout=True)
