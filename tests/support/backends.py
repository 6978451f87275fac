"""The storage backends the contract suites run against: the in-memory twins (unit
tier, no processes) and Redis (the embedded server and a separately started
redis-server), behind one small test interface."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import redis

from kms.config import RedisConfig
from kms.sealing import KEK_SIZE_BYTES, Sealer
from kms.storage import Storage, StorageLimits, open_memory_storage, open_storage
from kms.storage.memory_db import MemoryDatabase
from kms.storage.redis_client import redis_client


class Backend(ABC):
    """One backend holding the state of any number of nodes (KME prefixes)."""

    name: str

    @abstractmethod
    def open(self, kme_id: str, kek: bytes | None = None, limits: StorageLimits = StorageLimits()) -> Storage:
        """A node's storage on this backend (a new connection, the same data)."""

    @abstractmethod
    def records(self) -> int:
        """How many records the backend holds (0: nothing left behind)."""

    @abstractmethod
    def unused_bits(self, kme_id: str, link_id: str, owner: str) -> int:
        """Unused bits of a pool half counted from the stored blocks themselves,
        independent of the counter the pool store keeps."""

    @abstractmethod
    def block_count(self, kme_id: str, link_id: str, owner: str) -> int:
        """How many blocks a pool half stores."""

    def close(self) -> None:
        """Release what the backend opened for the test."""


class MemoryBackend(Backend):
    name = "memory"

    def __init__(self):
        self.database = MemoryDatabase()

    def open(self, kme_id: str, kek: bytes | None = None, limits: StorageLimits = StorageLimits()) -> Storage:
        return open_memory_storage(kme_id, self.database, limits)

    def _tables(self) -> dict:
        return self.database._tables

    def records(self) -> int:
        count = 0
        for name, table in self._tables().items():
            if name.endswith(":pools"):
                count += sum(len(half.blocks) for half in table.values())
            elif not name.endswith(":links"):
                count += len(table)
        return count

    def _half(self, kme_id: str, link_id: str, owner: str):
        return self.database.namespace(f"{kme_id}:pools").get(f"{link_id}|{owner}")

    def unused_bits(self, kme_id: str, link_id: str, owner: str) -> int:
        half = self._half(kme_id, link_id, owner)
        blocks = half.blocks.values() if half else ()
        return sum(len(block.material) - sum(block.used) for block in blocks) * 8

    def block_count(self, kme_id: str, link_id: str, owner: str) -> int:
        half = self._half(kme_id, link_id, owner)
        return len(half.blocks) if half else 0


class RedisBackend(Backend):
    """A Redis of any topology, reached through the product's own client factory; ``raw``
    is a plain client on the same data (on Cluster: a cluster client)."""

    def __init__(self, name: str, settings: RedisConfig | str):
        self.name = name
        self.settings = RedisConfig(url=settings) if isinstance(settings, str) else settings
        self.raw: redis.Redis = redis_client(self.settings)

    @property
    def url(self) -> str:
        """The URL of a single-server backend (the racing-process tests pass it on)."""
        assert self.settings.url, f"{self.name} has no single URL"
        return self.settings.url

    def open(self, kme_id: str, kek: bytes | None = None, limits: StorageLimits = StorageLimits()) -> Storage:
        return open_storage(self.settings, kme_id, Sealer(kek or os.urandom(KEK_SIZE_BYTES), kme_id), limits)

    def records(self) -> int:
        return len(list(self.raw.scan_iter()))

    def unused_bits(self, kme_id: str, link_id: str, owner: str) -> int:
        prefix = f"qkms:{{{kme_id}|{link_id}}}:pool:{owner}:"
        unused = 0
        for name in self.raw.scan_iter(match=prefix + "b:*"):
            length = int(self.raw.hget(name, "len"))
            marks = self.raw.get(prefix + "u:" + name.decode()[len(prefix) + 2:]) or b""
            unused += length - marks[:length].count(b"\x01")
        return unused * 8

    def block_count(self, kme_id: str, link_id: str, owner: str) -> int:
        return len(list(self.raw.scan_iter(match=f"qkms:{{{kme_id}|{link_id}}}:pool:{owner}:b:*")))

    def close(self) -> None:
        self.raw.close()
