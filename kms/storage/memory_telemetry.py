"""TelemetryStore in process memory: the twin of RedisTelemetryStore for the unit tier."""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

from kms.storage.memory_db import MemoryDatabase
from kms.telemetry import ALARMS_KEPT, SAMPLES_KEPT, Alarm, LinkSample, TelemetryStore


class MemoryTelemetryStore(TelemetryStore):
    """The telemetry of node ``kme_id`` in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._table = database.namespace(f"{kme_id}:telemetry")
        self._table.setdefault("samples", {})
        self._table.setdefault("alarms", deque(maxlen=ALARMS_KEPT))
        self._table.setdefault("curves", {})

    def record(self, samples: list[LinkSample], alarms: list[Alarm]) -> None:
        with self._db.lock:
            for sample in samples:
                history = self._table["samples"].setdefault((sample.link_id, sample.owner),
                                                            deque(maxlen=SAMPLES_KEPT))
                history.append(sample)
            self._table["alarms"].extend(alarms)

    def samples(self, since: float = 0.0) -> dict[tuple[str, str], list[LinkSample]]:
        with self._db.lock:
            return {half: [s for s in history if s.at > since] for half, history in self._table["samples"].items()}

    def alarms(self, since: float = 0.0) -> list[Alarm]:
        with self._db.lock:
            return [a for a in self._table["alarms"] if a.at > since]

    def put_rate_curve(self, link_id: str, curve: dict[str, Any]) -> None:
        with self._db.lock:
            self._table["curves"][link_id] = copy.deepcopy(curve)

    def rate_curve(self, link_id: str) -> dict[str, Any] | None:
        with self._db.lock:
            return copy.deepcopy(self._table["curves"].get(link_id))
