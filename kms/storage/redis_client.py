"""Redis connections from the ``redis`` settings of a node: a URL (one server),
Redis Sentinel (the current master of a replicated pair or more) or Redis Cluster,
and the replication check (``WAIT``) that keeps a failover from undoing a decision."""

from __future__ import annotations

import functools
import os
import select
import sys

import redis
from redis._parsers import _HiredisParser
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from kms.config import RedisConfig
from kms.errors import Unavailable

#: Timeouts of every connection (seconds).
SOCKET_TIMEOUT_S = 10
CONNECT_TIMEOUT_S = 5


def redis_client(settings: RedisConfig | str) -> redis.Redis | RedisCluster:
    """A binary-safe client for a URL (``redis://``, ``rediss://``, ``unix://``), the
    master a Sentinel names, or a Cluster, with bounded timeouts."""
    if isinstance(settings, str):
        settings = RedisConfig(url=settings)
    common = {"socket_timeout": SOCKET_TIMEOUT_S, "socket_connect_timeout": CONNECT_TIMEOUT_S}
    if settings.sentinel is not None:
        sentinel = settings.sentinel
        password = _secret(sentinel.password_env)
        watchers = Sentinel([_host_port(node) for node in sentinel.nodes], sentinel_kwargs=common, **common)
        return watchers.master_for(sentinel.master_name, db=sentinel.db, password=password, retry_on_timeout=True,
                                   parser_class=ReadinessParser)
    if settings.cluster is not None:
        nodes = [ClusterNode(*_host_port(node)) for node in settings.cluster.nodes]
        # RedisCluster passes no parser_class on to its nodes' connections: they keep redis-py's check.
        return RedisCluster(startup_nodes=nodes, password=_secret(settings.cluster.password_env), **common)
    return redis.Redis.from_url(settings.url, health_check_interval=30, retry_on_timeout=True,
                                parser_class=ReadinessParser, **common)


class ReadinessParser(_HiredisParser):
    """hiredis's parser, whose check that a pooled connection holds no stale reply
    (made on every command) asks the kernel directly.

    redis-py asks with ``select.poll``, which gevent's monkey-patching replaces by a
    cooperative poll: in the node's gevent worker a command then cost its sender 65–67 µs
    of CPU, 47–53 µs with the kernel's ``poll`` (benchmarks/bench_redis_call.py). A
    zero-timeout check never waits, so the original ``poll`` serves it without blocking
    the worker; a socket that reports data, or a check with a timeout, goes on to
    redis-py's own code. Reads the parser's ``_sock`` and ``_reader``, as redis-py 5 to 8
    name them."""

    def can_read(self, timeout: float = 0) -> bool:
        sock, reader = self._sock, self._reader
        if timeout == 0 and sock is not None and reader is not None and not reader.has_data():
            if not (hasattr(sock, "pending") and sock.pending()) and not _readable_now(sock):
                return False
        return super().can_read(timeout)


@functools.cache
def _kernel_poll():
    """``select.poll`` as the kernel offers it, also after gevent patched it. Taken at the
    first check: if gevent has not been imported by then, ``select.poll`` is still the
    original (gevent.monkey is not imported here, which would cost processes that never
    patch ~13 ms at start)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("select", "poll") if monkey is not None else select.poll


def _readable_now(sock) -> bool:
    poller = _kernel_poll()()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _host_port(node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    return host.strip("[]"), int(port)


def _secret(env: str | None) -> str | None:
    return os.environ.get(env) if env else None


class Replication:
    """After a write, wait until ``min_acked`` replicas hold it (Redis WAIT); fewer within
    the timeout is Unavailable. With ``min_acked`` 0 it does nothing.

    WAIT counts only the writes of the connection it is sent on, and the write being
    confirmed went out on whatever pooled connection was free then: another thread may
    hold that one now, and a connection with no write of its own would be "acknowledged"
    at once. So the check writes a tick of its own (``INCR``, in the key's hash slot) and
    sends WAIT after it on the same connection; the master's replication offset only
    grows, so once the tick is replicated so is every write made before it."""

    def __init__(self, client: redis.Redis | RedisCluster, min_acked: int = 0, timeout_ms: int = 200):
        self._redis = client
        self._min_acked = min_acked
        self._timeout_ms = timeout_ms

    def confirm(self, key: str) -> None:
        """Unavailable unless the write to ``key``, made on any connection before this
        call, reached enough replicas."""
        if not self._min_acked:
            return
        try:
            if isinstance(self._redis, RedisCluster):
                server = self._redis.get_redis_connection(self._redis.get_node_from_key(key))
            else:
                server = self._redis
            pipe = server.pipeline(transaction=False)  # one connection for both commands
            pipe.incr(_tick_key(key))
            pipe.execute_command("WAIT", self._min_acked, self._timeout_ms)
            _, acked = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable("the key store could not confirm replication") from exc
        if int(acked) < self._min_acked:
            raise Unavailable("the key store could not replicate the change in time")


def _tick_key(key: str) -> str:
    """The replication tick in ``key``'s hash slot (its ``{tag}``, or the key itself)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    tag = key[start + 1:end] if start != -1 and end > start + 1 else key
    return f"qkms:{{{tag}}}:replication-tick"
