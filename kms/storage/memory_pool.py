"""PoolStore in process memory: the twin of RedisPoolStore for the unit tier.

Same semantics as the Redis pools (see kms/pools.py and kms/storage/redis_pool.py),
checked by the same contract suite; one database lock makes each operation atomic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kms.errors import Unavailable
from kms.keys import KeyBlock
from kms.pools import MAX_SEGMENTS_PER_KEY, Carved, PoolMismatch, PoolStore, Segment
from kms.storage.memory_db import MemoryDatabase


@dataclass
class _Block:
    sequence: int
    material: bytes
    used: bytearray
    left: int


@dataclass
class _Half:
    blocks: dict[str, _Block] = field(default_factory=dict)
    high_water: int = -1
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("carved_bits", "taken_bits", "discarded_bits"), 0))

    def ordered(self) -> list[tuple[str, _Block]]:
        return sorted(self.blocks.items(), key=lambda item: item[1].sequence)

    def spend(self, block_id: str, nbytes: int) -> None:
        block = self.blocks[block_id]
        block.left -= nbytes
        if block.left <= 0:
            del self.blocks[block_id]

    @property
    def bits(self) -> int:
        return sum(block.left for block in self.blocks.values()) * 8


class MemoryPoolStore(PoolStore):
    """Link pools of node ``kme_id`` in a :class:`MemoryDatabase`."""

    def __init__(self, database: MemoryDatabase, kme_id: str):
        self._db = database
        self._halves: dict[str, _Half] = database.namespace(f"{kme_id}:pools")

    def _half(self, link_id: str, owner: str) -> _Half:
        return self._halves.setdefault(f"{link_id}|{owner}", _Half())

    def add_blocks(self, link_id: str, owner: str, blocks: Sequence[KeyBlock]) -> int:
        with self._db.lock:
            half, added = self._half(link_id, owner), 0
            for block in sorted((b for b in blocks if b.material), key=lambda b: b.sequence):
                if block.sequence > half.high_water:
                    size = len(block.material)
                    half.blocks[block.block_id] = _Block(block.sequence, block.material, bytearray(size), size)
                    half.high_water = block.sequence
                    added += 1
            return added

    def carve(self, link_id: str, owner: str, sizes_bytes: Sequence[int]) -> list[Carved]:
        with self._db.lock:
            half = self._half(link_id, owner)
            if half.bits < sum(sizes_bytes) * 8:
                raise Unavailable("not enough key material on the link")
            plans = _plan(half.ordered(), sizes_bytes)
            if any(len(plan) > MAX_SEGMENTS_PER_KEY for plan in plans):
                raise Unavailable(f"a key would span more than {MAX_SEGMENTS_PER_KEY} pool blocks")
            carved = [Carved(tuple(plan), b"".join(self._use(half, seg) for seg in plan)) for plan in plans]
            half.stats["carved_bits"] += sum(sizes_bytes) * 8
            return carved

    @staticmethod
    def _use(half: _Half, seg: Segment) -> bytes:
        block = half.blocks[seg.block_id]
        block.used[seg.offset:seg.offset + seg.length] = b"\1" * seg.length
        material = block.material[seg.offset:seg.offset + seg.length]
        half.spend(seg.block_id, seg.length)
        return material

    def take_segments(self, link_id: str, owner: str, keys: Sequence[Sequence[Segment]]) -> list[bytes]:
        flat = [segment for segments in keys for segment in segments]
        if any(seg.offset < 0 or seg.length <= 0 for seg in flat):
            raise PoolMismatch("pool segment out of bounds")
        with self._db.lock:
            half = self._half(link_id, owner)
            self._check_free(half, flat)
            out = [b"".join(half.blocks[s.block_id].material[s.offset:s.offset + s.length] for s in segments)
                   for segments in keys]
            for seg in flat:
                half.blocks[seg.block_id].used[seg.offset:seg.offset + seg.length] = b"\1" * seg.length
            for seg in flat:
                half.spend(seg.block_id, seg.length)
            half.stats["taken_bits"] += sum(seg.length for seg in flat) * 8
            return out

    @staticmethod
    def _check_free(half: _Half, flat: Sequence[Segment]) -> None:
        claimed: dict[str, list[Segment]] = {}
        for seg in flat:
            block = half.blocks.get(seg.block_id)
            if block is None:
                raise PoolMismatch(f"pool segment missing: block {seg.block_id}")
            if seg.offset + seg.length > len(block.material):
                raise PoolMismatch(f"pool segment bounds: block {seg.block_id}")
            if any(block.used[seg.offset:seg.offset + seg.length]):
                raise PoolMismatch(f"pool segment used: block {seg.block_id}")
            for other in claimed.get(seg.block_id, []):
                if seg.offset < other.offset + other.length and other.offset < seg.offset + seg.length:
                    raise PoolMismatch(f"pool segment overlap: block {seg.block_id}")
            claimed.setdefault(seg.block_id, []).append(seg)

    def discard_before(self, link_id: str, owner: str, sequence: int, offset: int) -> int:
        with self._db.lock:
            half, dropped = self._half(link_id, owner), 0
            for block_id, block in half.ordered():
                if block.sequence < sequence:
                    dropped += block.left
                    del half.blocks[block_id]
                elif block.sequence == sequence and offset > 0:
                    upto = min(offset, len(block.material))
                    fresh = upto - sum(block.used[:upto])
                    block.used[:upto] = b"\1" * upto
                    dropped += fresh
                    if fresh:
                        half.spend(block_id, fresh)
            half.stats["discarded_bits"] += dropped * 8
            return dropped

    def head(self, link_id: str, owner: str) -> tuple[int, int] | None:
        with self._db.lock:
            ordered = self._half(link_id, owner).ordered()
            if not ordered:
                return None
            block = ordered[0][1]
            return block.sequence, len(block.material) - block.left

    def available_bits(self, link_id: str, owner: str) -> int:
        with self._db.lock:
            return self._half(link_id, owner).bits

    def usage_bits(self, link_id: str, owner: str) -> dict[str, int]:
        with self._db.lock:
            return dict(self._half(link_id, owner).stats)

    def last_sequence(self, link_id: str, owner: str) -> int | None:
        with self._db.lock:
            ordered = self._half(link_id, owner).ordered()
            return ordered[-1][1].sequence if ordered else None

    def block_digests(self, link_id: str, owner: str) -> dict[int, str]:
        with self._db.lock:
            return {block.sequence: _digest(block) for _, block in self._half(link_id, owner).ordered()}


def _plan(ordered: list[tuple[str, _Block]], sizes_bytes: Sequence[int]) -> list[list[Segment]]:
    """The segments each key would take from the head of the half (nothing changes)."""
    lefts = {block_id: block.left for block_id, block in ordered}
    plans, index = [], 0
    for need in sizes_bytes:
        plan = []
        while need > 0:
            block_id, block = ordered[index]
            take = min(lefts[block_id], need)
            plan.append(Segment(block_id, len(block.material) - lefts[block_id], take))
            lefts[block_id] -= take
            need -= take
            index += lefts[block_id] == 0
        plans.append(plan)
    return plans


def _digest(block: _Block) -> str:
    """The same digest as RedisPoolStore.block_digests: free positions and their bytes."""
    material = np.frombuffer(block.material, np.uint8)
    free = np.flatnonzero(np.frombuffer(bytes(block.used), np.uint8) == 0)
    return hashlib.sha256(free.astype("<u4").tobytes() + material[free].tobytes()).hexdigest()
