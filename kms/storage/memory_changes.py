"""ChangeLog in process memory: the twin of RedisChangeLog for the unit tier."""

from __future__ import annotations

from collections.abc import Sequence

from kms.changes import Change, ChangeLog, ordered
from kms.storage.memory_db import MemoryDatabase


class MemoryChangeLog(ChangeLog):
    """The change log of node ``kme_id`` in a :class:`MemoryDatabase` (its entries:
    ``changes``, ``version`` and ``done``, each made on first use)."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._table = database.namespace(f"{kme_id}:changes")

    def add(self, changes: Sequence[Change]) -> list[Change]:
        with self._db.lock:
            held = self._table.setdefault("changes", {})
            added = [change for change in changes if change.change_id not in held]
            for change in added:
                held[change.change_id] = change
            if added:
                self._table["version"] = self._table.get("version", 0) + 1
            return added

    def version(self) -> int:
        with self._db.lock:
            return self._table.get("version", 0)

    def read(self) -> tuple[int, list[Change]]:
        with self._db.lock:
            return self._table.get("version", 0), ordered(self._table.get("changes", {}).values())

    def mark_done(self, change_id: str) -> bool:
        with self._db.lock:
            done = self._table.setdefault("done", set())
            fresh = change_id not in done
            done.add(change_id)
            return fresh

    def done(self) -> frozenset[str]:
        with self._db.lock:
            return frozenset(self._table.get("done", ()))
