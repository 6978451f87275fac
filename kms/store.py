"""The key store contract.

A store holds reservations: keys handed to a master SAE and waiting for their slave
SAEs. Implementations must make every check-and-take atomic in the backend itself
(never with Python locks), because several worker processes and replicas of a node
share one store. Key material is sealed before it leaves the process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from kms.keys import Key, Reservation

#: How long request outcomes are remembered (retries arrive within seconds).
REQUEST_MEMORY_S = 3600
#: How long a request may stay "busy" before a retry may run it again.
REQUEST_BUSY_S = 60


class KeyStore(ABC):
    """Reservations of keys for slave SAEs, with all-or-nothing semantics."""

    @abstractmethod
    def reserve(self, reservations: Sequence[Reservation], ttl_s: int, request_id: str | None = None) -> None:
        """Store every reservation, or none.

        Raises DuplicateKeyId (storing nothing) if any key_ID already exists,
        StoreFull (storing nothing) if the store would then hold more reservations
        than the capacity it was opened with, and QuotaExceeded (storing nothing) if a
        master SAE would then hold more reservations than its quota. Each reservation is destroyed, material
        included, ``ttl_s`` seconds after this call unless all its slaves have claimed
        it before. With ``request_id`` the key_IDs
        are remembered so that :meth:`abort_request` can destroy them again.
        """

    @abstractmethod
    def begin_request(self, request_id: str) -> str:
        """Mark a node-to-node request as in progress, once.

        Returns ``"new"`` the first time, else its state: ``"busy"`` (still running),
        ``"done"``, ``"failed"`` or ``"aborted"``. This makes retried requests idempotent.
        """

    @abstractmethod
    def end_request(self, request_id: str, succeeded: bool) -> None:
        """Record the outcome of a request started with :meth:`begin_request`."""

    @abstractmethod
    def abort_request(self, request_id: str) -> int:
        """Destroy the reservations made under ``request_id`` and refuse it from now on;
        returns how many reservations were destroyed."""

    @abstractmethod
    def claim(self, key_ids: Sequence[str], slave_id: str, master_id: str) -> list[Key]:
        """Hand ``slave_id`` every listed key, or none, in the order asked.

        Raises KeysNotFound if any key_ID is unknown (or was reserved by another
        master), Unauthorized if ``slave_id`` is not a pending slave of every key; in
        both cases nothing changes. On success ``slave_id`` is removed from each key's
        pending slaves and a key with no pending slave left is deleted.
        """

    @abstractmethod
    def pending_count(self, master_id: str | None = None) -> int:
        """How many reservations are currently held (of ``master_id`` only, if given),
        expired ones not counted (for status, capacity, quotas and metrics)."""

    @abstractmethod
    def charge(self, account: str, amount: int, limit: int, window_s: int) -> None:
        """Add ``amount`` to what ``account`` used in the current fixed window of
        ``window_s`` seconds (windows start at multiples of ``window_s`` on the store's
        clock); raise QuotaExceeded, adding nothing, if that would pass ``limit``."""

    @abstractmethod
    def ping(self) -> bool:
        """True if the backend answers."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the stored data stays."""
