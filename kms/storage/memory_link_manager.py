"""LinkManagerRecords in process memory: the twin of RedisLinkManagerRecords."""

from __future__ import annotations

from kms.link_manager_state import Heartbeat, LinkManagerRecords, SupervisorRecord
from kms.storage.memory_db import MemoryDatabase


class MemoryLinkManagerRecords(LinkManagerRecords):
    """The link manager records of node ``kme_id`` in a :class:`MemoryDatabase`; the
    heartbeat expires by the database's clock."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._table = database.namespace(f"{kme_id}:linkd")

    def beat(self, heartbeat: Heartbeat, ttl_s: float) -> None:
        with self._db.lock:
            self._table["heartbeat"] = (heartbeat, self._db.clock() + ttl_s)

    def record(self, record: SupervisorRecord) -> None:
        with self._db.lock:
            self._table["supervisor"] = record

    def read(self) -> tuple[Heartbeat | None, SupervisorRecord | None]:
        with self._db.lock:
            heartbeat, expires_at = self._table.get("heartbeat", (None, 0.0))
            if heartbeat is not None and self._db.clock() >= expires_at:
                del self._table["heartbeat"]
                heartbeat = None
            return heartbeat, self._table.get("supervisor")
