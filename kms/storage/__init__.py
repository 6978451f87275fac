"""Where a node keeps its state: the store, link pools, link board and admission
counters on one backend.

The domain (``kms/``) defines the interfaces (:class:`~kms.store.KeyStore`,
:class:`~kms.pools.PoolStore`, :class:`~kms.link_board.LinkBoard`,
:class:`~kms.inbox.BlockInbox`, :class:`~kms.link_manager_state.LinkManagerRecords`,
:class:`~kms.admission.AdmissionCounters`, :class:`~kms.sequence_ledger.SequenceLedger`);
this package
holds their implementations, Redis (the product) and in-memory twins (the unit tier,
one process only). Every Redis command lives in this package. A backend is chosen by
one factory (:func:`open_storage`) from the node's ``redis`` settings, as Vault
chooses a physical backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from kms.admission import AdmissionCounters
from kms.config import RedisConfig
from kms.errors import ConfigError
from kms.inbox import BlockInbox
from kms.link_board import LinkBoard
from kms.link_manager_state import LinkManagerRecords
from kms.pools import PoolStore
from kms.sealed_items import SealedItems
from kms.sealing import Sealer
from kms.sequence_ledger import SequenceLedger
from kms.store import KeyStore


@dataclass(frozen=True)
class StorageLimits:
    """Capacity the store enforces: reservations per node and per master SAE (None: no limit)."""

    capacity_keys: int | None = None
    quota_keys_per_master: int | None = None


@dataclass
class Storage:
    """One node's store, pools, link board, block inbox, link manager records and sequence
    ledger on one backend."""

    store: KeyStore
    pools: PoolStore
    board: LinkBoard
    inbox: BlockInbox
    link_manager: LinkManagerRecords
    admission: AdmissionCounters
    ledger: SequenceLedger

    def close(self) -> None:
        self.store.close()


def open_storage(settings: RedisConfig | str, kme_id: str, sealer: Sealer,
                 limits: StorageLimits = StorageLimits()) -> Storage:
    """The stores of ``kme_id`` on the Redis the node's ``redis`` settings name (a URL,
    Sentinel or Cluster; a bare string is a URL), sharing one connection pool."""
    from kms.storage.redis_admission import RedisAdmissionCounters
    from kms.storage.redis_board import RedisLinkBoard
    from kms.storage.redis_client import Replication, redis_client
    from kms.storage.redis_inbox import RedisBlockInbox
    from kms.storage.redis_ledger import RedisSequenceLedger
    from kms.storage.redis_link_manager import RedisLinkManagerRecords
    from kms.storage.redis_pool import RedisPoolStore
    from kms.storage.redis_store import RedisKeyStore

    if isinstance(settings, str):
        settings = RedisConfig(url=settings)
    if settings.embedded:
        raise ConfigError("redis: the embedded server's URL is needed to open its storage")
    client = redis_client(settings)
    replication = Replication(client, settings.min_replicas_acked, settings.replica_ack_timeout_ms)
    store = RedisKeyStore(client, sealer, kme_id, limits.capacity_keys, limits.quota_keys_per_master, replication)
    return Storage(store, RedisPoolStore(client, sealer, kme_id, replication), RedisLinkBoard(client, kme_id),
                   RedisBlockInbox(client, sealer, kme_id), RedisLinkManagerRecords(client, kme_id),
                   RedisAdmissionCounters(client, kme_id), RedisSequenceLedger(client, kme_id))


def open_memory_storage(kme_id: str, database=None, limits: StorageLimits = StorageLimits()) -> Storage:
    """The in-memory twins of the three stores (tests; threads of one process only)."""
    from kms.storage.memory_admission import MemoryAdmissionCounters
    from kms.storage.memory_board import MemoryLinkBoard
    from kms.storage.memory_db import MemoryDatabase
    from kms.storage.memory_inbox import MemoryBlockInbox
    from kms.storage.memory_ledger import MemorySequenceLedger
    from kms.storage.memory_link_manager import MemoryLinkManagerRecords
    from kms.storage.memory_pool import MemoryPoolStore
    from kms.storage.memory_store import MemoryKeyStore

    database = database or MemoryDatabase()
    return Storage(MemoryKeyStore(database, kme_id, limits.capacity_keys, limits.quota_keys_per_master),
                   MemoryPoolStore(database, kme_id), MemoryLinkBoard(database, kme_id),
                   MemoryBlockInbox(database, kme_id), MemoryLinkManagerRecords(database, kme_id),
                   MemoryAdmissionCounters(database, kme_id), MemorySequenceLedger(database, kme_id))


def open_sealed_items(settings: RedisConfig | str, kme_id: str) -> SealedItems:
    """Every sealed value of ``kme_id`` on the Redis its settings name, for re-sealing
    them under a new KEK (kms.rotation)."""
    from kms.storage.redis_client import redis_client
    from kms.storage.redis_sealed import RedisSealedItems

    if isinstance(settings, str):
        settings = RedisConfig(url=settings)
    return RedisSealedItems(redis_client(settings), kme_id)
