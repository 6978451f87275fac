"""Link key pools: the unused shared bits of each link, at each end, sealed.

A link's blocks are split between its two ends by sequence parity, so each end draws
only from its own half (no coordination needed to avoid using a bit twice): the
half's *owner* carves from the head of it (``carve``) and tells the peer which
segments it used; the peer takes exactly those segments from its copy
(``take_segments``). ``discard_before`` lets the peer drop what the owner skipped,
so both copies converge to the same remaining bits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from kms.errors import Conflict
from kms.keys import KeyBlock


#: A key may span at most this many pool blocks (bounds the size of a relay message);
#: ``carve`` refuses, carving nothing, a key that would need more.
MAX_SEGMENTS_PER_KEY = 64
#: Longest block id a pool accepts (block ids travel in relay messages).
MAX_BLOCK_ID_CHARS = 128


class PoolMismatch(Conflict):
    """The peer named pool bits this end does not hold (missing or already used)."""

    message = "link key pools are out of step"


@dataclass(frozen=True)
class Segment:
    """``length`` bytes at ``offset`` in block ``block_id``."""

    block_id: str
    offset: int
    length: int

    def to_list(self) -> list:
        return [self.block_id, self.offset, self.length]

    @classmethod
    def from_list(cls, item: Sequence) -> "Segment":
        block_id, offset, length = item
        if not (isinstance(block_id, str) and isinstance(offset, int) and isinstance(length, int)):
            raise ValueError("segment must be [block_id, offset, length]")
        if not 0 < len(block_id) <= MAX_BLOCK_ID_CHARS or isinstance(offset, bool) or isinstance(length, bool):
            raise ValueError(f"segment block_id must have 1 to {MAX_BLOCK_ID_CHARS} characters")
        if offset < 0 or length <= 0:
            raise ValueError("segment offset must be >= 0 and length > 0")
        return cls(block_id, offset, length)


@dataclass(frozen=True)
class Carved:
    """Key material cut from a pool, with the segments it came from."""

    segments: tuple[Segment, ...]
    material: bytes

    def __repr__(self) -> str:
        return f"Carved(segments={len(self.segments)}, size_bits={len(self.material) * 8})"


def owner_of(block: KeyBlock, endpoints: tuple[str, str]) -> str:
    """Which end owns a block: the lower KME_ID takes even sequences, the other odd."""
    low, high = sorted(endpoints)
    return low if block.sequence % 2 == 0 else high


class PoolStore(ABC):
    """Per-link, per-owner pools of sealed key blocks with atomic carving."""

    @abstractmethod
    def add_blocks(self, link_id: str, owner: str, blocks: Sequence[KeyBlock]) -> int:
        """Append blocks to the owner's half; a block whose sequence is not above every
        sequence ever added is skipped. Block ids have at most MAX_BLOCK_ID_CHARS
        characters. Returns how many were added."""

    @abstractmethod
    def carve(self, link_id: str, owner: str, sizes_bytes: Sequence[int]) -> list[Carved]:
        """As the owner: cut one key per size from the head, all or none: Unavailable,
        carving nothing, if the half is short or a key would span more than
        MAX_SEGMENTS_PER_KEY blocks."""

    @abstractmethod
    def take_segments(self, link_id: str, owner: str, keys: Sequence[Sequence[Segment]]) -> list[bytes]:
        """As the peer: take exactly these segments, all or none (PoolMismatch if any is
        missing or already used)."""

    @abstractmethod
    def discard_before(self, link_id: str, owner: str, sequence: int, offset: int) -> int:
        """Drop blocks before ``sequence`` and the first ``offset`` bytes of that block; returns bytes dropped."""

    @abstractmethod
    def head(self, link_id: str, owner: str) -> tuple[int, int] | None:
        """(sequence, offset) of the first unused byte of the owner's half, or None if empty."""

    @abstractmethod
    def available_bits(self, link_id: str, owner: str) -> int:
        """Unused bits in the owner's half."""

    @abstractmethod
    def usage_bits(self, link_id: str, owner: str) -> dict[str, int]:
        """Cumulative bits of the owner's half: ``carved_bits`` (used by the owner),
        ``taken_bits`` (used as the peer) and ``discarded_bits`` (dropped by pool sync)."""

    @abstractmethod
    def last_sequence(self, link_id: str, owner: str) -> int | None:
        """Sequence of the newest block held in the owner's half, or None if empty."""

    @abstractmethod
    def block_digests(self, link_id: str, owner: str) -> dict[int, str]:
        """Per block sequence, SHA-256 over the block's remaining unused bytes and their
        positions: lets an operator or a test check that both ends hold the same pool
        without revealing it."""
