"""Admin changes: the network's runtime configuration as a replicated log.

An administrator's change (add an SAE, switch a link's policy, pause a link, ...) is
a :class:`Change`: an operation with its arguments, stamped with a Lamport
``version``, the node it was made at (``origin``), the administrator and the time.
Every node keeps every change it has heard of in its :class:`ChangeLog` (in its own
Redis, so a change survives restarts); nodes push new changes to each other and
compare :func:`digest` values on every link-state exchange, pulling what they lack
(anti-entropy), so a node that was down catches up. Applying the log in its total
order (:func:`ordered`) to a node's file configuration gives the same runtime view
on every node (kms/runtime_config.py).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: The operations an administrator can make; their arguments are checked by
#: kms/runtime_config.py when the change is applied.
OPERATIONS = ("put-sae", "remove-sae", "put-peer", "put-link", "set-policy", "set-link-state", "destroy-pools",
              "set-eavesdropper")
#: Most changes a node keeps (and accepts from a peer at once).
MAX_CHANGES = 100_000


@dataclass(frozen=True)
class Change:
    """One administrator's change, as every node stores it; never key material."""

    change_id: str
    version: int
    origin: str
    admin: str
    at: float
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    #: Unix time from which the change applies (0: at once); both ends of a link switch
    #: a policy or an eavesdropper at the same moment.
    effective_at: float = 0.0

    @property
    def order(self) -> tuple[int, str, str]:
        """Position in the log's total order: version, then origin, then id."""
        return self.version, self.origin, self.change_id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Change":
        """Parse :meth:`to_dict` output; ValueError if it is malformed."""
        if not isinstance(data, dict):
            raise ValueError("a change must be an object")
        try:
            change = cls(str(data["change_id"]), _int(data["version"]), str(data["origin"]), str(data["admin"]),
                         float(data["at"]), str(data["op"]), dict(data.get("args") or {}),
                         float(data.get("effective_at", 0.0)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed change ({type(exc).__name__})") from None
        if change.op not in OPERATIONS:
            raise ValueError(f"unknown operation {change.op!r}")
        if not change.change_id or len(change.change_id) > 64:
            raise ValueError("change_id must have 1 to 64 characters")
        return change

    def encode(self) -> str:
        """Canonical JSON (what the stores keep)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("expected a non-negative integer")
    return value


def ordered(changes: Iterable[Change]) -> list[Change]:
    """The changes in the log's total order."""
    return sorted(changes, key=lambda change: change.order)


def digest(changes: Iterable[Change]) -> str:
    """What two nodes compare to tell whether they hold the same changes."""
    ids = sorted(change.change_id for change in changes)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]


def next_version(changes: Iterable[Change]) -> int:
    """The Lamport version of a new change: one above every change known."""
    return 1 + max((change.version for change in changes), default=0)


class ChangeLog(ABC):
    """A node's copy of the network's admin changes, and which of them this node has
    carried out (contract suite: tests/kms/test_change_log_contract.py). Every method
    raises StoreError if the backend fails."""

    @abstractmethod
    def add(self, changes: Sequence[Change]) -> list[Change]:
        """Keep the changes not held yet (by ``change_id``; a held one is never
        replaced); returns those added. Any addition bumps :meth:`version`."""

    @abstractmethod
    def version(self) -> int:
        """A counter bumped by every addition: one small read, so every process of the
        node can tell cheaply whether its view is current (0 for an empty log)."""

    @abstractmethod
    def read(self) -> tuple[int, list[Change]]:
        """The version and every change held, read together, in the log's total order."""

    @abstractmethod
    def mark_done(self, change_id: str) -> bool:
        """Record that this node carried out ``change_id``'s effect (a pool destroyed);
        False if it was recorded before."""

    @abstractmethod
    def done(self) -> frozenset[str]:
        """The change_ids recorded by :meth:`mark_done`."""
