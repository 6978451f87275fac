"""SequenceLedger in process memory: the twin of RedisSequenceLedger for the unit tier."""

from __future__ import annotations

from kms.sequence_ledger import SequenceLedger, check_sequence
from kms.storage.memory_db import MemoryDatabase


class MemorySequenceLedger(SequenceLedger):
    """The ledger of node ``kme_id`` in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._marks: dict[str, int] = database.namespace(f"{kme_id}:ledger")

    def advance(self, name: str, sequence: int) -> bool:
        check_sequence(sequence)
        with self._db.lock:
            if name in self._marks and self._marks[name] >= sequence:
                return False
            self._marks[name] = sequence
            return True

    def newest(self, name: str) -> int | None:
        with self._db.lock:
            return self._marks.get(name)
