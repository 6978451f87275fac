"""The link board: what a node knows about every link half in the network.

The link manager writes it (its own links from its pools and sources, the other
nodes' links as they report them); request handlers read it to route and to report
status. Entries older than ``STALE_AFTER_S`` count as down.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

STALE_AFTER_S = 10.0


@dataclass(frozen=True)
class LinkHalf:
    """One direction of one link: material its owner can send, and the source's health."""

    link_id: str
    owner: str
    available_bits: int
    state: str = "up"
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    observed_at: float = 0.0
    sources: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    #: Recent block sequences of the *other* end's half that this owner holds; the
    #: other end uses a block of its own half only once it is listed here.
    held_peer_sequences: tuple[int, ...] = ()
    #: ``observed_at`` on the owner's own clock when a reader moved ``observed_at`` onto
    #: its clock to judge freshness (None: not moved).
    owner_observed_at: float | None = None

    def fresh(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.observed_at <= STALE_AFTER_S

    @property
    def version(self) -> float:
        """What orders the observations of one half: its owner's clock when it observed
        it. Never moved by a reader: a move includes the message's transit time, so a
        push delayed by d seconds would otherwise outrank its owner's next d seconds of
        newer pushes (and hold back the blocks they confirm)."""
        return self.observed_at if self.owner_observed_at is None else self.owner_observed_at


class LinkBoard(ABC):
    """Link halves of the network as one node knows them (contract suite:
    tests/kms/test_link_board_contract.py)."""

    @abstractmethod
    def publish(self, halves: list[LinkHalf]) -> None:
        """Record observations, each replacing the previous one of its (link, owner);
        StoreError if the backend fails."""

    @abstractmethod
    def read(self) -> dict[tuple[str, str], LinkHalf]:
        """Every recorded half, by (link_id, owner); StoreError if the backend fails."""
