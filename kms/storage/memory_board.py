"""LinkBoard in process memory: the twin of RedisLinkBoard for the unit tier."""

from __future__ import annotations

from kms.link_board import LinkBoard, LinkHalf
from kms.storage.memory_db import MemoryDatabase


class MemoryLinkBoard(LinkBoard):
    """The link board of node ``kme_id`` in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._halves: dict[tuple[str, str], LinkHalf] = database.namespace(f"{kme_id}:links")

    def publish(self, halves: list[LinkHalf]) -> None:
        with self._db.lock:
            self._halves.update({(h.link_id, h.owner): h for h in halves})

    def read(self) -> dict[tuple[str, str], LinkHalf]:
        with self._db.lock:
            return dict(self._halves)
