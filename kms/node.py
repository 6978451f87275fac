"""Assembling one node's parts (store, sources, service) from its validated config."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from kms.config import NodeConfig
from kms.link_board import RedisLinkBoard
from kms.network import KeyNetwork
from kms.pools import PoolStore
from kms.redis_pool import RedisPoolStore
from kms.redis_store import RedisKeyStore
from kms.relay import PeerTransport
from kms.sealing import Sealer, load_kek
from kms.service import KeyService
from kms.source_registry import build_source
from kms.sources import KeySource, SourceContext
from kms.store import KeyStore


def redis_client(url: str) -> redis.Redis:
    """A binary-safe client with bounded timeouts, for ``redis://``, ``rediss://`` or ``unix://``."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                health_check_interval=30, retry_on_timeout=True)


@dataclass
class NodeResources:
    """Everything a node process needs to serve keys; close() releases it."""

    config: NodeConfig
    store: KeyStore
    service: KeyService
    local_source: KeySource
    network: KeyNetwork | None = None
    pools: PoolStore | None = None
    board: RedisLinkBoard | None = None

    @classmethod
    def open(cls, config: NodeConfig, redis_url: str, transport: PeerTransport | None = None) -> "NodeResources":
        """Connect to Redis and assemble the node; ``transport`` is the KM channel (needed
        when the config has peers)."""
        client = redis_client(redis_url)
        sealer = Sealer(load_kek(config.kek.file, config.kek.env), config.kme_id)
        store = RedisKeyStore(client, sealer, config.kme_id, capacity_keys=config.limits.max_key_count)
        local_source = build_source("csprng", {}, SourceContext(kme_id=config.kme_id))
        local_source.start()
        pools = RedisPoolStore(client, sealer, config.kme_id)
        board = RedisLinkBoard(client, config.kme_id)
        network = KeyNetwork(config, store, pools, board, transport) if transport is not None else None
        return cls(config, store, KeyService(config, store, local_source, network), local_source,
                   network, pools, board)

    def close(self) -> None:
        self.local_source.stop()
        self.store.close()
