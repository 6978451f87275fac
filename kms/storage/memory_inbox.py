"""BlockInbox in process memory: the twin of RedisBlockInbox for the unit tier."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from kms.inbox import BlockInbox
from kms.keys import KeyBlock
from kms.storage.memory_db import MemoryDatabase


class MemoryBlockInbox(BlockInbox):
    """The inbox of node ``kme_id`` in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._queues: dict[str, deque[KeyBlock]] = database.namespace(f"{kme_id}:inbox")

    def put(self, link_id: str, blocks: Sequence[KeyBlock]) -> None:
        with self._db.lock:
            self._queues.setdefault(link_id, deque()).extend(blocks)

    def take(self, link_id: str, max_blocks: int) -> list[KeyBlock]:
        with self._db.lock:
            queue = self._queues.get(link_id, deque())
            return [queue.popleft() for _ in range(min(max_blocks, len(queue)))]

    def waiting(self, link_id: str) -> int:
        with self._db.lock:
            return len(self._queues.get(link_id, ()))
