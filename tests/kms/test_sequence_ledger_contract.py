"""The SequenceLedger contract (kms/sequence_ledger.py), run against every backend: the
in-memory twin and RedisSequenceLedger on both kinds of Redis."""

from __future__ import annotations

import threading

import pytest

from kms.sequence_ledger import MAX_SEQUENCE, SequenceLedger
from tests.support.backends import Backend


@pytest.fixture
def ledger(backend: Backend) -> SequenceLedger:
    return backend.open("KME-B").ledger


def test_only_a_higher_sequence_advances(ledger: SequenceLedger) -> None:
    assert ledger.newest("A-B#pqc") is None
    assert ledger.advance("A-B#pqc", 10)
    assert not ledger.advance("A-B#pqc", 10), "a replay was accepted"
    assert not ledger.advance("A-B#pqc", 9), "an older sequence was accepted"
    assert ledger.newest("A-B#pqc") == 10
    assert ledger.advance("A-B#pqc", 12) and ledger.newest("A-B#pqc") == 12
    assert ledger.advance("A-B#pqc", MAX_SEQUENCE) and not ledger.advance("A-B#pqc", MAX_SEQUENCE)


def test_zero_is_a_first_sequence(ledger: SequenceLedger) -> None:
    assert ledger.advance("L", 0) and not ledger.advance("L", 0)


def test_names_and_nodes_are_separate(backend: Backend, ledger: SequenceLedger) -> None:
    ledger.advance("A-B#pqc", 100)
    assert ledger.advance("B-C#pqc", 5)
    assert backend.open("KME-A").ledger.advance("A-B#pqc", 1)
    assert backend.open("KME-B").ledger.newest("A-B#pqc") == 100


@pytest.mark.parametrize("bad", [-1, MAX_SEQUENCE + 1, True, 1.5, "3"])
def test_out_of_range_sequences_are_refused(ledger: SequenceLedger, bad) -> None:
    with pytest.raises(ValueError, match="a sequence is an integer"):
        ledger.advance("L", bad)
    assert ledger.newest("L") is None


def test_concurrent_advances_accept_each_sequence_once(backend: Backend) -> None:
    """Eight workers race to record the same sequences: each is accepted exactly once."""
    accepted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        ledger = backend.open("KME-B").ledger
        for sequence in range(1, 60):
            if ledger.advance("race", sequence):
                with lock:
                    accepted.append(sequence)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == len(set(accepted)) and max(accepted) == 59
