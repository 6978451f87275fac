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

    def fresh(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.observed_at <= STALE_AFTER_S


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
