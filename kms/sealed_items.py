"""Everything a node's storage holds sealed, walked in batches, and replaced one value
at a time only if it is unchanged: what a KEK rotation (kms.rotation) needs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, repr=False)
class SealedItem:
    """One sealed value: where it is (opaque to the domain), the identity it is bound
    to, and its sealed bytes."""

    location: tuple[str, ...]
    identity: str
    sealed: bytes

    def __repr__(self) -> str:
        return f"SealedItem({self.identity!r})"


class SealedItems(ABC):
    """The sealed values of one node: reservations, pool blocks, inbox blocks."""

    @abstractmethod
    def batches(self, batch_size: int) -> Iterator[list[SealedItem]]:
        """Every sealed value of the node, in batches of about ``batch_size`` (a value
        added or removed during the walk may or may not be seen)."""

    @abstractmethod
    def replace(self, item: SealedItem, resealed: bytes) -> bool:
        """Atomically put ``resealed`` where ``item`` is, only if its sealed value is
        still ``item.sealed`` (a claim, carve or take in between wins); True if replaced."""
