"""The PoolStore contract (kms/pools.py), run against every backend: the in-memory twin
(unit tier) and PoolStore on every kind of Redis the product supports, the embedded
server and a separately started redis-server (DESIGN.md sections 2, 5 and 8). What only
Redis has (data at rest, several processes, restarts) is checked on Redis only.

One link, KME-A--KME-B. KME-A owns the even sequences, so the owner's pool lives under
KME-A's prefix and the peer's copy of the same half under KME-B's prefix (each node
with its own KEK). Assertions compare lengths, positions and digests, never key bytes.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence

import pytest

from kms.storage.embedded_redis import EmbeddedRedis
from kms.errors import StoreError, Unavailable
from kms.keys import KeyBlock
from kms.storage.redis_client import redis_client
from kms.pools import MAX_SEGMENTS_PER_KEY, PoolMismatch, PoolStore, Segment, owner_of
from kms.storage.redis_pool import RedisPoolStore
from kms.sealing import KEK_SIZE_BYTES, Sealer
from tests.support.at_rest import dump, encodings
from tests.support.backends import Backend, RedisBackend
from tests.support.races import race

LINK = "KME-A--KME-B"
ENDS = ("KME-A", "KME-B")
OWNER, PEER = ENDS
BLOCK_BYTES = 16
RACE_WORKERS = 6
RACE_BLOCKS = 48
RACE_BLOCK_BYTES = 256
#: The most a racing worker asks for in one carve: up to 4 keys of up to 48 bytes.
RACE_CARVE_MAX_KEYS, RACE_KEY_MAX_BYTES = 4, 48


def open_pools(url: str, kek: bytes, kme_id: str) -> RedisPoolStore:
    return RedisPoolStore(redis_client(url), Sealer(kek, kme_id), kme_id)


def make_blocks(sequences: Sequence[int], size_bytes: int = BLOCK_BYTES) -> list[KeyBlock]:
    """Fresh blocks of the owner's half (even sequences belong to KME-A)."""
    blocks = [KeyBlock(f"{LINK}:{seq}", os.urandom(size_bytes), seq) for seq in sequences]
    assert all(owner_of(block, ENDS) == OWNER for block in blocks)
    return blocks


def expected_bytes(blocks: Sequence[KeyBlock], segments: Sequence[Segment]) -> bytes:
    by_id = {block.block_id: block.material for block in blocks}
    return b"".join(by_id[s.block_id][s.offset:s.offset + s.length] for s in segments)


@pytest.fixture
def owner(backend: Backend) -> PoolStore:
    """KME-A's pool store: it carves the half it owns."""
    return backend.open(OWNER).pools


@pytest.fixture
def peer(backend: Backend) -> PoolStore:
    """KME-B's pool store: it holds a copy of KME-A's half and takes segments from it."""
    return backend.open(PEER).pools


@pytest.fixture
def filled(owner: PoolStore, peer: PoolStore) -> list[KeyBlock]:
    """Three 16-byte blocks (sequences 0, 2, 4) at both ends."""
    blocks = make_blocks([0, 2, 4])
    assert owner.add_blocks(LINK, OWNER, blocks) == 3
    assert peer.add_blocks(LINK, OWNER, blocks) == 3
    return blocks


def snapshot(pools: PoolStore) -> tuple:
    return (pools.available_bits(LINK, OWNER), pools.usage_bits(LINK, OWNER), pools.head(LINK, OWNER),
            pools.block_digests(LINK, OWNER), pools.last_sequence(LINK, OWNER))


# --- add_blocks -------------------------------------------------------------------------


def test_add_blocks_is_idempotent(owner: PoolStore) -> None:
    blocks = make_blocks([0, 2, 4])
    assert owner.add_blocks(LINK, OWNER, blocks) == 3
    assert owner.add_blocks(LINK, OWNER, blocks) == 0
    assert owner.add_blocks(LINK, OWNER, list(reversed(blocks))) == 0
    assert owner.available_bits(LINK, OWNER) == 3 * BLOCK_BYTES * 8
    assert owner.last_sequence(LINK, OWNER) == 4
    assert owner.add_blocks(LINK, OWNER, []) == 0


def test_add_blocks_sorts_a_batch_and_adds_only_new_sequences(owner: PoolStore) -> None:
    assert owner.add_blocks(LINK, OWNER, make_blocks([6, 2])) == 2
    assert owner.head(LINK, OWNER) == (2, 0)
    assert owner.add_blocks(LINK, OWNER, make_blocks([0, 4, 6])) == 0, "a block below the highest came back"
    assert owner.add_blocks(LINK, OWNER, make_blocks([4, 8, 10])) == 2
    assert sorted(owner.block_digests(LINK, OWNER)) == [2, 6, 8, 10]
    assert owner.available_bits(LINK, OWNER) == 4 * BLOCK_BYTES * 8


def test_a_fully_consumed_block_is_never_added_again(owner: PoolStore, backend: Backend) -> None:
    blocks = make_blocks([0, 2])
    owner.add_blocks(LINK, OWNER, blocks)
    owner.carve(LINK, OWNER, [2 * BLOCK_BYTES])
    assert owner.head(LINK, OWNER) is None
    assert owner.add_blocks(LINK, OWNER, blocks) == 0
    assert owner.add_blocks(LINK, OWNER, make_blocks([2])) == 0
    assert owner.available_bits(LINK, OWNER) == 0
    assert owner.block_digests(LINK, OWNER) == {}
    with pytest.raises(Unavailable):
        owner.carve(LINK, OWNER, [1])


@pytest.mark.integration
def test_the_highest_sequence_survives_an_embedded_redis_restart(embedded_redis: EmbeddedRedis) -> None:
    kek = os.urandom(KEK_SIZE_BYTES)
    pools = open_pools(embedded_redis.url, kek, OWNER)
    spent, kept = make_blocks([0]), make_blocks([2])
    pools.add_blocks(LINK, OWNER, spent + kept)
    pools.carve(LINK, OWNER, [BLOCK_BYTES + 3])
    before = snapshot(pools)
    embedded_redis.stop()
    with EmbeddedRedis(embedded_redis.data_dir) as again:
        pools = open_pools(again.url, kek, OWNER)
        assert snapshot(pools) == before
        assert pools.add_blocks(LINK, OWNER, spent + kept) == 0, "a consumed block came back after a restart"
        assert pools.available_bits(LINK, OWNER) == (BLOCK_BYTES - 3) * 8
        (rest,) = pools.carve(LINK, OWNER, [BLOCK_BYTES - 3])
        assert rest.segments == (Segment(kept[0].block_id, 3, BLOCK_BYTES - 3),)
        same = rest.material == kept[0].material[3:]
        assert same, "material differs after restart"
        assert pools.add_blocks(LINK, OWNER, make_blocks([4])) == 1


# --- carve ------------------------------------------------------------------------------


def test_carve_takes_from_the_head_in_order_across_blocks(owner: PoolStore, filled) -> None:
    b0, b2, b4 = (block.block_id for block in filled)
    carved = owner.carve(LINK, OWNER, [10, 10, 12])
    assert [c.segments for c in carved] == [
        (Segment(b0, 0, 10),),
        (Segment(b0, 10, 6), Segment(b2, 0, 4)),
        (Segment(b2, 4, 12),),
    ]
    assert [len(c.material) for c in carved] == [10, 10, 12]
    assert all(c.material == expected_bytes(filled, c.segments) for c in carved), "carved bytes differ"
    assert owner.head(LINK, OWNER) == (4, 0)
    assert owner.available_bits(LINK, OWNER) == BLOCK_BYTES * 8
    (last,) = owner.carve(LINK, OWNER, [5])
    assert last.segments == (Segment(b4, 0, 5),)
    assert owner.head(LINK, OWNER) == (4, 5)


def test_carved_keys_never_repeat_bytes(owner: PoolStore) -> None:
    blocks = make_blocks(range(0, 20, 2), size_bytes=64)
    owner.add_blocks(LINK, OWNER, blocks)
    seen: set[tuple[str, int]] = set()
    for sizes in ([7, 33], [64, 1], [100], [3, 3, 3], [250], [176]):
        for carved in owner.carve(LINK, OWNER, sizes):
            positions = {(s.block_id, i) for s in carved.segments for i in range(s.offset, s.offset + s.length)}
            assert not positions & seen, "a byte position was carved twice"
            seen |= positions
    assert len(seen) == 640
    assert owner.available_bits(LINK, OWNER) == 0


def test_carve_is_all_or_nothing(owner: PoolStore, filled, backend: Backend) -> None:
    owner.carve(LINK, OWNER, [5])
    before = snapshot(owner)
    for sizes in ([3 * BLOCK_BYTES - 4], [20, 20, 4], [1] * (3 * BLOCK_BYTES - 4)):
        with pytest.raises(Unavailable):
            owner.carve(LINK, OWNER, sizes)
        assert snapshot(owner) == before, "a refused carve consumed material"
    assert backend.unused_bits(OWNER, LINK, OWNER) == before[0]
    carved = owner.carve(LINK, OWNER, [20, 20, 3])
    assert sum(len(c.material) for c in carved) == 43
    assert owner.available_bits(LINK, OWNER) == 0


def test_a_key_spanning_too_many_blocks_is_refused_and_carves_nothing(owner: PoolStore, backend: Backend) -> None:
    """A key may span at most MAX_SEGMENTS_PER_KEY blocks, which bounds a relay message."""
    owner.add_blocks(LINK, OWNER, make_blocks(range(0, 2 * (MAX_SEGMENTS_PER_KEY + 2), 2), size_bytes=1))
    before = owner.available_bits(LINK, OWNER)
    with pytest.raises(Unavailable):
        owner.carve(LINK, OWNER, [1, MAX_SEGMENTS_PER_KEY + 1])
    assert owner.available_bits(LINK, OWNER) == before == backend.unused_bits(OWNER, LINK, OWNER)
    assert owner.usage_bits(LINK, OWNER)["carved_bits"] == 0
    (carved,) = owner.carve(LINK, OWNER, [MAX_SEGMENTS_PER_KEY])
    assert len(carved.segments) == MAX_SEGMENTS_PER_KEY


def test_carving_an_empty_pool_is_unavailable(owner: PoolStore) -> None:
    with pytest.raises(Unavailable):
        owner.carve(LINK, OWNER, [1])
    assert owner.usage_bits(LINK, OWNER)["carved_bits"] == 0


def test_carved_repr_hides_material(owner: PoolStore, filled) -> None:
    (carved,) = owner.carve(LINK, OWNER, [BLOCK_BYTES])
    text = repr(carved)
    leaked = carved.material.hex() in text or repr(carved.material) in text
    assert not leaked, "repr shows material"


def test_an_empty_block_never_yields_an_empty_segment(owner: PoolStore) -> None:
    owner.add_blocks(LINK, OWNER, [KeyBlock(f"{LINK}:0", b"", 0)] + make_blocks([2]))
    for carved in owner.carve(LINK, OWNER, [4, 4]):
        assert all(s.length > 0 for s in carved.segments), "a zero-length segment was carved"


# --- take_segments (the peer's copy) ------------------------------------------------------


def test_the_peer_takes_exactly_the_owners_bytes(owner: PoolStore, peer: PoolStore, filled) -> None:
    carved = owner.carve(LINK, OWNER, [10, 10, 12])
    taken = peer.take_segments(LINK, OWNER, [c.segments for c in carved])
    assert [len(t) for t in taken] == [10, 10, 12]
    assert all(t == c.material for t, c in zip(taken, carved)), "the peer's bytes differ from the owner's"
    assert peer.available_bits(LINK, OWNER) == owner.available_bits(LINK, OWNER) == BLOCK_BYTES * 8
    assert peer.usage_bits(LINK, OWNER)["taken_bits"] == 32 * 8


def test_the_peer_may_take_segments_out_of_order(peer: PoolStore, filled) -> None:
    b0, b2, b4 = (block.block_id for block in filled)
    keys = [(Segment(b4, 8, 8),), (Segment(b2, 3, 2), Segment(b0, 0, 1))]
    taken = peer.take_segments(LINK, OWNER, keys)
    assert all(t == expected_bytes(filled, k) for t, k in zip(taken, keys)), "taken bytes differ"
    assert peer.available_bits(LINK, OWNER) == (3 * BLOCK_BYTES - 11) * 8


def _mismatches(b0: str, b2: str, b4: str) -> dict[str, list[list[Segment]]]:
    """Calls naming one bad segment (besides good ones) in blocks b0, b2, b4 of 16 bytes,
    after byte 1-2 of b0 was taken."""
    return {
        "missing block": [[Segment(b0, 0, 4)], [Segment(f"{LINK}:98", 0, 4)]],
        "already used": [[Segment(b2, 0, 4)], [Segment(b0, 1, 2)]],
        "past the end": [[Segment(b0, 0, 4)], [Segment(b2, BLOCK_BYTES - 3, 4)]],
        "offset past the end": [[Segment(b0, 0, 4)], [Segment(b4, BLOCK_BYTES, 1)]],
        "overlap across keys": [[Segment(b2, 4, 6)], [Segment(b2, 9, 2)]],
        "overlap within a key": [[Segment(b4, 0, 6), Segment(b4, 5, 1)]],
        "same segment twice": [[Segment(b4, 2, 2)], [Segment(b4, 2, 2)]],
    }


@pytest.mark.parametrize("case", list(_mismatches("b0", "b2", "b4")))
def test_take_segments_is_all_or_nothing(case: str, peer: PoolStore, filled, backend: Backend) -> None:
    """Every call names one bad segment next to good ones; nothing may be taken."""
    peer.take_segments(LINK, OWNER, [[Segment(filled[0].block_id, 1, 2)]])
    before = snapshot(peer)
    with pytest.raises(PoolMismatch):
        peer.take_segments(LINK, OWNER, _mismatches(*(block.block_id for block in filled))[case])
    assert snapshot(peer) == before, "a refused take consumed material"
    assert backend.unused_bits(PEER, LINK, OWNER) == before[0]
    b0, b2, b4 = (block.block_id for block in filled)
    whole = [[Segment(b0, 0, 1), Segment(b0, 3, BLOCK_BYTES - 3)], [Segment(b2, 0, BLOCK_BYTES)],
             [Segment(b4, 0, BLOCK_BYTES)]]
    assert [len(t) for t in peer.take_segments(LINK, OWNER, whole)] == [BLOCK_BYTES - 2, BLOCK_BYTES, BLOCK_BYTES]
    assert peer.available_bits(LINK, OWNER) == 0


def test_a_negative_offset_is_a_mismatch_and_takes_nothing(peer: PoolStore, filled) -> None:
    before = snapshot(peer)
    with pytest.raises(PoolMismatch):
        peer.take_segments(LINK, OWNER, [[Segment(filled[0].block_id, 0, 4)],
                                         [Segment(filled[1].block_id, -4, 4)]])
    assert snapshot(peer) == before, "a refused take consumed material"


def test_a_block_the_peer_finished_is_missing_afterwards(owner, peer: PoolStore, filled) -> None:
    (carved,) = owner.carve(LINK, OWNER, [BLOCK_BYTES])
    peer.take_segments(LINK, OWNER, [carved.segments])
    assert sorted(peer.block_digests(LINK, OWNER)) == [2, 4]
    with pytest.raises(PoolMismatch):
        peer.take_segments(LINK, OWNER, [carved.segments])
    assert peer.add_blocks(LINK, OWNER, filled[:1]) == 0


# --- discard_before, head, usage -----------------------------------------------------------


def test_discard_before_drops_earlier_blocks_and_a_prefix(peer: PoolStore, filled, backend: Backend) -> None:
    b0, b2, _ = (block.block_id for block in filled)
    peer.take_segments(LINK, OWNER, [[Segment(b0, 2, 3)], [Segment(b2, 1, 2), Segment(b2, 10, 4)]])
    assert peer.discard_before(LINK, OWNER, 4, 5) == (BLOCK_BYTES - 3) + (BLOCK_BYTES - 6) + 5
    assert peer.head(LINK, OWNER) == (4, 5)
    assert peer.available_bits(LINK, OWNER) == (BLOCK_BYTES - 5) * 8 == backend.unused_bits(PEER, LINK, OWNER)
    assert sorted(peer.block_digests(LINK, OWNER)) == [4]
    assert peer.usage_bits(LINK, OWNER) == {"carved_bits": 0, "taken_bits": 9 * 8, "discarded_bits": 28 * 8}
    assert peer.discard_before(LINK, OWNER, 4, 5) == 0
    assert peer.discard_before(LINK, OWNER, 0, 0) == 0
    with pytest.raises(PoolMismatch):
        peer.take_segments(LINK, OWNER, [[Segment(filled[2].block_id, 4, 2)]])
    (rest,) = peer.take_segments(LINK, OWNER, [[Segment(filled[2].block_id, 5, BLOCK_BYTES - 5)]])
    same = rest == filled[2].material[5:]
    assert same, "bytes after the discarded prefix differ"


#: Sequences as large as Redis stores exactly (below 2^53) but with more than 14
#: significant digits, which Lua's number-to-string conversion would round (a clock in
#: microseconds, as device-fed links use, is about 1.8e15).
LARGE_SEQUENCES = (2**53 - 10, 2**53 - 8, 1_795_972_261_595_882, 1_795_972_261_595_884)


@pytest.mark.parametrize("first, second", [LARGE_SEQUENCES[:2], LARGE_SEQUENCES[2:]])
def test_discard_before_a_large_sequence_keeps_that_block(peer: PoolStore, backend: Backend, first, second) -> None:
    blocks = make_blocks([first, second])
    peer.add_blocks(LINK, OWNER, blocks)
    assert peer.discard_before(LINK, OWNER, second, 3) == BLOCK_BYTES + 3
    assert sorted(peer.block_digests(LINK, OWNER)) == [second] and peer.head(LINK, OWNER) == (second, 3)
    (rest,) = peer.take_segments(LINK, OWNER, [[Segment(blocks[1].block_id, 3, BLOCK_BYTES - 3)]])
    same = rest == blocks[1].material[3:]
    assert same, "bytes after the discarded prefix differ"


def test_discard_counts_only_bytes_not_used_yet(peer: PoolStore, filled, backend: Backend) -> None:
    peer.take_segments(LINK, OWNER, [[Segment(filled[1].block_id, 0, 3), Segment(filled[1].block_id, 6, 2)]])
    assert peer.discard_before(LINK, OWNER, 2, 8) == BLOCK_BYTES + 3
    assert peer.available_bits(LINK, OWNER) == (2 * BLOCK_BYTES - 8) * 8 == backend.unused_bits(PEER, LINK, OWNER)


def test_discard_before_the_whole_pool_empties_it(peer: PoolStore, filled, backend: Backend) -> None:
    assert peer.discard_before(LINK, OWNER, 100, 0) == 3 * BLOCK_BYTES
    assert peer.head(LINK, OWNER) is None
    assert peer.available_bits(LINK, OWNER) == 0
    assert backend.block_count(PEER, LINK, OWNER) == 0


def test_discard_with_an_offset_past_the_block_end_drops_only_that_block(peer: PoolStore, filled, backend: Backend) -> None:
    dropped = peer.discard_before(LINK, OWNER, 2, BLOCK_BYTES + 8)
    assert dropped == 2 * BLOCK_BYTES
    assert peer.available_bits(LINK, OWNER) == BLOCK_BYTES * 8 == backend.unused_bits(PEER, LINK, OWNER)


def test_discard_to_the_owners_head_makes_both_copies_equal(owner, peer: PoolStore, filled) -> None:
    """Pool sync: the owner carved some keys the peer never heard of."""
    owner.carve(LINK, OWNER, [7, 13])
    assert owner.block_digests(LINK, OWNER) != peer.block_digests(LINK, OWNER)
    sequence, offset = owner.head(LINK, OWNER)
    assert peer.discard_before(LINK, OWNER, sequence, offset) == 20
    assert owner.block_digests(LINK, OWNER) == peer.block_digests(LINK, OWNER)
    assert owner.available_bits(LINK, OWNER) == peer.available_bits(LINK, OWNER)
    assert peer.head(LINK, OWNER) == owner.head(LINK, OWNER)


def test_head_follows_the_first_unused_byte(owner: PoolStore) -> None:
    assert owner.head(LINK, OWNER) is None
    assert owner.last_sequence(LINK, OWNER) is None
    owner.add_blocks(LINK, OWNER, make_blocks([4, 6]))
    assert owner.head(LINK, OWNER) == (4, 0)
    owner.carve(LINK, OWNER, [BLOCK_BYTES - 1])
    assert owner.head(LINK, OWNER) == (4, BLOCK_BYTES - 1)
    owner.carve(LINK, OWNER, [2])
    assert owner.head(LINK, OWNER) == (6, 1)
    owner.carve(LINK, OWNER, [BLOCK_BYTES - 1])
    assert owner.head(LINK, OWNER) is None


def test_usage_counters_add_up(owner: PoolStore, peer: PoolStore, filled) -> None:
    zero = {"carved_bits": 0, "taken_bits": 0, "discarded_bits": 0}
    assert owner.usage_bits(LINK, OWNER) == peer.usage_bits(LINK, OWNER) == zero
    carved = owner.carve(LINK, OWNER, [4, 6])
    owner.carve(LINK, OWNER, [11])
    peer.take_segments(LINK, OWNER, [c.segments for c in carved])
    peer.discard_before(LINK, OWNER, *owner.head(LINK, OWNER))
    assert owner.usage_bits(LINK, OWNER) == {"carved_bits": 21 * 8, "taken_bits": 0, "discarded_bits": 0}
    assert peer.usage_bits(LINK, OWNER) == {"carved_bits": 0, "taken_bits": 10 * 8, "discarded_bits": 11 * 8}
    for pools in (owner, peer):
        assert sum(pools.usage_bits(LINK, OWNER).values()) + pools.available_bits(LINK, OWNER) \
            == 3 * BLOCK_BYTES * 8


def test_the_two_halves_of_a_link_are_separate(owner: PoolStore) -> None:
    owner.add_blocks(LINK, OWNER, make_blocks([0]))
    other = [KeyBlock(f"{LINK}:1", os.urandom(BLOCK_BYTES), 1)]
    assert owner_of(other[0], ENDS) == PEER
    assert owner.add_blocks(LINK, PEER, other) == 1
    owner.carve(LINK, OWNER, [BLOCK_BYTES])
    assert owner.available_bits(LINK, PEER) == BLOCK_BYTES * 8
    assert owner.usage_bits(LINK, PEER)["carved_bits"] == 0
    assert owner.head(LINK, PEER) == (1, 0)


# --- digests -------------------------------------------------------------------------------


def test_digests_match_after_the_same_operations_and_differ_after_one_sided_use(
        owner: PoolStore, peer: PoolStore, filled) -> None:
    assert owner.block_digests(LINK, OWNER) == peer.block_digests(LINK, OWNER)
    assert sorted(owner.block_digests(LINK, OWNER)) == [0, 2, 4]
    carved = owner.carve(LINK, OWNER, [5, 20])
    peer.take_segments(LINK, OWNER, [c.segments for c in carved])
    assert owner.block_digests(LINK, OWNER) == peer.block_digests(LINK, OWNER)
    assert sorted(peer.block_digests(LINK, OWNER)) == [2, 4]
    before = owner.block_digests(LINK, OWNER)
    peer.take_segments(LINK, OWNER, [[Segment(filled[2].block_id, 9, 1)]])
    after = peer.block_digests(LINK, OWNER)
    assert after[2] == before[2] and after[4] != before[4]


def test_digests_differ_when_the_bytes_differ(owner: PoolStore, peer: PoolStore) -> None:
    mine, theirs = make_blocks([0]), make_blocks([0])
    owner.add_blocks(LINK, OWNER, mine)
    peer.add_blocks(LINK, OWNER, theirs)
    assert owner.block_digests(LINK, OWNER)[0] != peer.block_digests(LINK, OWNER)[0]


# --- at rest ---------------------------------------------------------------------------------


@pytest.fixture
def redis_pair(redis_backend: RedisBackend) -> tuple[PoolStore, PoolStore, list[KeyBlock]]:
    """Owner and peer on Redis, filled like ``filled``."""
    owner, peer = redis_backend.open(OWNER).pools, redis_backend.open(PEER).pools
    blocks = make_blocks([0, 2, 4])
    owner.add_blocks(LINK, OWNER, blocks)
    peer.add_blocks(LINK, OWNER, blocks)
    return owner, peer, blocks


def test_nothing_at_rest_reveals_pool_material(redis_pair, redis_backend: RedisBackend) -> None:
    owner, peer, filled = redis_pair
    raw = redis_backend.raw
    more = make_blocks([6, 8], size_bytes=64)
    owner.add_blocks(LINK, OWNER, more)
    peer.add_blocks(LINK, OWNER, more)
    carved = owner.carve(LINK, OWNER, [9])
    peer.take_segments(LINK, OWNER, [c.segments for c in carved])
    blob = b"\n".join(dump(raw))
    stored_bytes = len(blob)
    assert stored_bytes > 5 * BLOCK_BYTES
    for block in filled + more:
        rest = block.material[9:] if block is filled[0] else block.material
        assert not any(form in blob for form in encodings(rest)), f"material of block {block.sequence} at rest"


def test_a_sealed_block_moved_to_another_block_id_does_not_unseal(redis_pair, redis_backend: RedisBackend) -> None:
    owner, _, filled = redis_pair
    raw = redis_backend.raw
    prefix = f"qkms:{{{OWNER}|{LINK}}}:pool:{OWNER}:b:"
    raw.hset(prefix + filled[0].block_id, "sealed", raw.hget(prefix + filled[1].block_id, "sealed"))
    with pytest.raises(StoreError):
        owner.carve(LINK, OWNER, [4])


# --- concurrency ---------------------------------------------------------------------------


def _carve_race(url: str, kek: bytes, seed: int, barrier, results) -> None:
    """One worker: carve batches of random sizes until the pool runs dry. Reports
    (segments, sha256 of material) per key."""
    pools = open_pools(url, kek, OWNER)
    rng = random.Random(seed)
    got, refusals = [], 0
    barrier.wait(timeout=60)
    while refusals < 3:
        try:
            carved = pools.carve(LINK, OWNER, [rng.randint(1, RACE_KEY_MAX_BYTES)
                                               for _ in range(rng.randint(1, RACE_CARVE_MAX_KEYS))])
        except Unavailable:
            refusals += 1
            continue
        got.extend(([s.to_list() for s in c.segments], hashlib.sha256(c.material).hexdigest()) for c in carved)
    results.put(got)


def test_racing_processes_never_carve_a_byte_twice(redis_backend: RedisBackend) -> None:
    backend, redis_url = redis_backend, redis_backend.url
    kek = os.urandom(KEK_SIZE_BYTES)
    blocks = make_blocks(range(0, 2 * RACE_BLOCKS, 2), size_bytes=RACE_BLOCK_BYTES)
    pools = open_pools(redis_url, kek, OWNER)
    pools.add_blocks(LINK, OWNER, blocks)
    total_bits = RACE_BLOCKS * RACE_BLOCK_BYTES * 8
    got = race(_carve_race, (redis_url, kek), RACE_WORKERS)
    positions: set[tuple[str, int]] = set()
    carved_bytes = 0
    for segments, digest in got:
        segs = [Segment.from_list(s) for s in segments]
        here = {(s.block_id, i) for s in segs for i in range(s.offset, s.offset + s.length)}
        assert len(here) == sum(s.length for s in segs), "a key repeats a byte position"
        assert not here & positions, "a byte position was handed out twice"
        positions |= here
        carved_bytes += len(here)
        assert hashlib.sha256(expected_bytes(blocks, segs)).hexdigest() == digest, "carved bytes differ"
    # Each worker ends after its third refusal, and a carve is refused only when fewer bytes
    # are left than it asks for: whatever the interleaving, less than one carve is left.
    left_bytes = total_bits // 8 - carved_bytes
    assert left_bytes < RACE_CARVE_MAX_KEYS * RACE_KEY_MAX_BYTES, f"carves refused with {left_bytes} bytes left"
    assert pools.usage_bits(LINK, OWNER)["carved_bits"] == carved_bytes * 8
    assert pools.available_bits(LINK, OWNER) == total_bits - carved_bytes * 8 == backend.unused_bits(OWNER, LINK, OWNER)


# --- the available_bits counter --------------------------------------------------------------


def test_available_bits_always_equals_the_unused_bytes_held(owner, peer: PoolStore, backend: Backend) -> None:
    rng = random.Random(7)
    blocks = make_blocks(range(0, 24, 2), size_bytes=40)
    for start in range(0, len(blocks), 3):
        owner.add_blocks(LINK, OWNER, blocks[start:start + 3])
        peer.add_blocks(LINK, OWNER, blocks[start:start + 3])
        for _ in range(4):
            sizes = [rng.randint(1, 30) for _ in range(rng.randint(1, 3))]
            try:
                carved = owner.carve(LINK, OWNER, sizes)
            except Unavailable:
                continue
            if rng.random() < 0.7:
                peer.take_segments(LINK, OWNER, [c.segments for c in carved])
            else:
                peer.discard_before(LINK, OWNER, *(owner.head(LINK, OWNER) or (10_000, 0)))
            for pools, kme in ((owner, OWNER), (peer, PEER)):
                assert pools.available_bits(LINK, OWNER) == backend.unused_bits(kme, LINK, OWNER)
        if owner.head(LINK, OWNER) is not None:
            peer.discard_before(LINK, OWNER, *owner.head(LINK, OWNER))
        assert owner.block_digests(LINK, OWNER) == peer.block_digests(LINK, OWNER)
