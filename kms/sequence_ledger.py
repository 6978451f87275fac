"""The sequence ledger: per name, the newest sequence number a node accepted.

A node that answers its peer's key-establishment messages (the ML-KEM source's
responder, in any web worker of the node) records each message's signed sequence
number here before acting on it: a message whose sequence is not above every one
accepted before (a replay, or one overtaken by a later message) is refused. The check
and the update are one atomic step in the backend, as several workers share it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

#: Sequences must fit in a double (Redis's Lua numbers) exactly.
MAX_SEQUENCE = 2**53 - 1


class SequenceLedger(ABC):
    """High-water marks by name (contract suite: tests/kms/test_sequence_ledger_contract.py)."""

    @abstractmethod
    def advance(self, name: str, sequence: int) -> bool:
        """Record ``sequence`` as the newest of ``name`` if it is above every sequence
        recorded for ``name`` before, and return True; else change nothing and return
        False. Atomic across processes sharing the backend; ``0 <= sequence <= MAX_SEQUENCE``."""

    @abstractmethod
    def newest(self, name: str) -> int | None:
        """The newest sequence recorded for ``name``, or None."""


def check_sequence(sequence: int) -> int:
    """ValueError unless ``sequence`` is a ledger sequence."""
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"a sequence is an integer from 0 to {MAX_SEQUENCE}")
    return sequence
