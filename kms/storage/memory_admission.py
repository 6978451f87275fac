"""AdmissionCounters in process memory: the twin of RedisAdmissionCounters (one
process only), on the database's clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kms.admission import AdmissionCounters, Verdict
from kms.storage.memory_db import MemoryDatabase


@dataclass
class _Account:
    tokens: float | None = None
    at: float = 0.0
    tickets: dict[str, float] = field(default_factory=dict)


class MemoryAdmissionCounters(AdmissionCounters):
    """The admission counters of node ``kme_id`` in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._accounts: dict[str, _Account] = database.namespace(f"{kme_id}:admission")

    def admit(self, account: str, ticket: str, rate_per_s: float | None, burst: int,
              max_in_progress: int | None, lease_s: float) -> Verdict:
        if rate_per_s is None and max_in_progress is None:
            return Verdict("ok")
        with self._db.lock:
            now = self._db.clock()
            state = self._accounts.setdefault(account, _Account())
            state.tickets = {t: end for t, end in state.tickets.items() if end > now}
            if max_in_progress is not None and len(state.tickets) >= max_in_progress:
                return Verdict("busy")
            if rate_per_s is not None:
                tokens = burst if state.tokens is None else state.tokens
                tokens = min(burst, tokens + max(0.0, now - state.at) * rate_per_s)
                if tokens < 1:
                    return Verdict("rate", math.ceil((1 - tokens) / rate_per_s * 1000) / 1000)
                state.tokens, state.at = tokens - 1, now
            if max_in_progress is not None:
                state.tickets[ticket] = now + lease_s
            return Verdict("ok")

    def release(self, account: str, ticket: str) -> None:
        with self._db.lock:
            state = self._accounts.get(account)
            if state is not None:
                state.tickets.pop(ticket, None)
