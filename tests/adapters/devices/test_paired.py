"""What both device sources share: the master's sequences and the blocks waiting for the
link manager."""

from __future__ import annotations

from adapters.devices.paired import BlockQueue, SequenceClock
from kms.keys import KeyBlock


def test_sequences_increase_alternate_parity_and_follow_a_millisecond_clock() -> None:
    now = [1_795_972_261.5954]
    clock = SequenceClock(lambda: now[0])
    first = clock.next()
    assert first == 1_795_972_261_595
    burst = [clock.next() for _ in range(5)]  # faster than the clock: run ahead of it
    sequences = [first, *burst]
    assert all(b > a for a, b in zip(sequences, sequences[1:]))
    assert [s % 2 for s in sequences] == [1, 0, 1, 0, 1, 0]
    now[0] += 10  # later: the clock again, with the next parity
    later = clock.next()
    assert later >= 1_795_972_271_595 and later % 2 != sequences[-1] % 2
    assert later < 10**14, "Redis's Lua writes numbers with 14 significant digits"


def test_a_parity_asked_for_is_given() -> None:
    clock = SequenceClock(lambda: 1_000.0)
    sequences = [clock.next(0), clock.next(0), clock.next(1), clock.next(1), clock.next(0)]
    assert [s % 2 for s in sequences] == [0, 0, 1, 1, 0]
    assert all(b > a for a, b in zip(sequences, sequences[1:]))


def test_a_restarted_master_keeps_increasing() -> None:
    before = SequenceClock(lambda: 1_000.0)
    last = [before.next() for _ in range(3)][-1]
    after = SequenceClock(lambda: 1_000.5)
    assert after.next() > last


def test_blocks_are_handed_out_whole_in_order_within_the_budget() -> None:
    queue = BlockQueue(capacity=3)
    for n in range(3):
        queue.put(KeyBlock(f"b{n}", bytes(10 + n), n))
    assert queue.room() == 0 and len(queue) == 3 and queue.bits() == 8 * 33
    assert queue.bits(parity=0) == 8 * (10 + 12) and queue.bits(parity=1) == 8 * 11
    assert queue.take(8 * 10 + 8 * 10) == [KeyBlock("b0", bytes(10), 0)]
    assert queue.take(7) == []
    assert [b.block_id for b in queue.take(1 << 20)] == ["b1", "b2"] and queue.room() == 3
