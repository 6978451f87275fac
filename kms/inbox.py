"""The block inbox: key blocks a link end received from its peer, waiting for the link
manager.

Some key sources need both link ends to act together (a vendor device's master end
calls enc_keys and tells the slave end which key_IDs to fetch; an ML-KEM exchange
needs both parties). The initiating end's source runs in the link manager and talks
to the other end over the KM channel; the other end answers in a web worker
(:meth:`kms.sources.KeySource.respond`) and leaves the blocks it made here, where
its link manager's source picks them up (``fetch``), so both ends' blocks go through
the same pool path (ownership, confirmation, sync).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from kms.keys import KeyBlock


class BlockInbox(ABC):
    """Blocks waiting per link, first in first out (contract suite:
    tests/kms/test_inbox_contract.py)."""

    @abstractmethod
    def put(self, link_id: str, blocks: Sequence[KeyBlock]) -> None:
        """Append blocks for ``link_id`` (sealed at rest, like the pools)."""

    @abstractmethod
    def take(self, link_id: str, max_blocks: int) -> list[KeyBlock]:
        """Remove and return up to ``max_blocks`` of the oldest blocks of ``link_id``."""

    @abstractmethod
    def waiting(self, link_id: str) -> int:
        """How many blocks of ``link_id`` wait."""
