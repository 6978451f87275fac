"""KeyStore in process memory: the twin of RedisKeyStore for the unit tier.

It passes the same contract suite as the Redis store. Atomicity comes from one lock
over the whole database, which is enough because an in-memory store can only be
shared by threads of one process; a node with several workers or replicas needs
Redis. Expiry follows ``clock`` (wall-clock seconds), checked on every access.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kms.errors import BadRequest, DuplicateKeyId, KeysNotFound, QuotaExceeded, StoreFull, Unauthorized
from kms.keys import Key, Reservation
from kms.storage.memory_db import MemoryDatabase
from kms.store import REQUEST_BUSY_S, REQUEST_MEMORY_S, KeyStore


@dataclass
class _Held:
    key: Key
    master_id: str
    pending: set[str]
    expires_at: float


class MemoryKeyStore(KeyStore):
    """Reservations of node ``kme_id`` in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase, kme_id: str, capacity_keys: int | None = None,
                 quota_keys_per_master: int | None = None):
        self._db = database
        self._capacity_keys = capacity_keys
        self._quota = quota_keys_per_master
        self._held: dict[str, _Held] = database.namespace(f"{kme_id}:res")
        self._requests: dict[str, tuple[str, float]] = database.namespace(f"{kme_id}:req")
        self._indexes: dict[str, tuple[set[str], float]] = database.namespace(f"{kme_id}:idx")
        self._charges: dict[str, tuple[int, int]] = database.namespace(f"{kme_id}:charges")

    @property
    def _clock(self) -> Callable[[], float]:
        return self._db.clock

    def _expire(self) -> None:
        now = self._clock()
        for table in (self._held, self._requests, self._indexes):
            for name in [name for name, value in table.items() if _expiry(value) <= now]:
                del table[name]

    def reserve(self, reservations: Sequence[Reservation], ttl_s: int, request_id: str | None = None) -> None:
        if not reservations:
            return
        key_ids = [r.key.key_id for r in reservations]
        with self._db.lock:
            self._expire()
            if len(set(key_ids)) != len(key_ids) or any(k in self._held for k in key_ids):
                raise DuplicateKeyId()
            self._check_room(reservations)
            expires_at = self._clock() + ttl_s
            for reservation in reservations:
                self._held[reservation.key.key_id] = _Held(reservation.key, reservation.master_id,
                                                            set(reservation.slave_ids), expires_at)
            if request_id:
                index, _ = self._indexes.get(request_id, (set(), 0.0))
                self._indexes[request_id] = (index | set(key_ids), expires_at)

    def _check_room(self, reservations: Sequence[Reservation]) -> None:
        if self._capacity_keys is not None and len(self._held) + len(reservations) > self._capacity_keys:
            raise StoreFull()
        if self._quota is None:
            return
        for master in {r.master_id for r in reservations}:
            adding = sum(r.master_id == master for r in reservations)
            if sum(h.master_id == master for h in self._held.values()) + adding > self._quota:
                raise QuotaExceeded()

    def begin_request(self, request_id: str) -> str:
        with self._db.lock:
            self._expire()
            if request_id not in self._requests:
                self._requests[request_id] = ("busy", self._clock() + REQUEST_BUSY_S)
                return "new"
            return self._requests[request_id][0]

    def end_request(self, request_id: str, succeeded: bool) -> None:
        with self._db.lock:
            self._requests[request_id] = ("done" if succeeded else "failed", self._clock() + REQUEST_MEMORY_S)

    def abort_request(self, request_id: str) -> int:
        with self._db.lock:
            self._expire()
            index, _ = self._indexes.pop(request_id, (set(), 0.0))
            destroyed = sum(self._held.pop(key_id, None) is not None for key_id in index)
            self._requests[request_id] = ("aborted", self._clock() + REQUEST_MEMORY_S)
            return destroyed

    def claim(self, key_ids: Sequence[str], slave_id: str, master_id: str) -> list[Key]:
        if len(set(key_ids)) != len(key_ids):
            raise BadRequest("key_IDs must not repeat a key_ID")
        with self._db.lock:
            self._expire()
            for key_id in key_ids:
                held = self._held.get(key_id)
                if held is None or held.master_id != master_id:
                    raise KeysNotFound(details=[{"key_ID": key_id}])
            if any(slave_id not in self._held[key_id].pending for key_id in key_ids):
                raise Unauthorized("caller is not a slave SAE of the requested keys")
            keys = []
            for key_id in key_ids:
                held = self._held[key_id]
                held.pending.discard(slave_id)
                if not held.pending:
                    del self._held[key_id]
                keys.append(held.key)
            return keys

    def pending_count(self, master_id: str | None = None) -> int:
        with self._db.lock:
            self._expire()
            return sum(master_id is None or h.master_id == master_id for h in self._held.values())

    def charge(self, account: str, amount: int, limit: int, window_s: int) -> None:
        with self._db.lock:
            window = int(self._clock() // window_s)
            used, used_in = self._charges.get(account, (0, window))
            used = used if used_in == window else 0
            if used + amount > limit:
                raise QuotaExceeded()
            self._charges[account] = (used + amount, window)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release: the data lives on in the database object."""


def _expiry(value) -> float:
    return value.expires_at if isinstance(value, _Held) else value[1]
