"""Trusted-node relay messages and the transport that carries them between nodes.

A key travels hop by hop. On the first hop of its primary route the key *is* the
carved link material (both ends carve the same segments); on every other hop it is
one-time-pad encrypted with fresh link material of that hop (ITU-T Y.3803 style key
relay), decrypted and re-encrypted at each trusted node, never stored there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from kms.keys import Provenance
from kms.pools import Segment
from kms.routing import Hop


@dataclass(frozen=True, repr=False)
class HopKey:
    """One key on one hop: where the pad came from and, unless the pad is the key, the
    one-time-pad ciphertext."""

    key_id: str
    segments: tuple[Segment, ...]
    ciphertext: bytes | None = None

    def __repr__(self) -> str:
        return f"HopKey(key_id={self.key_id!r}, segments={len(self.segments)})"


@dataclass(frozen=True)
class RelayRequest:
    """Deliver ``keys`` over ``route[hop_index]`` towards the route's last node, where
    they are reserved for ``slave_ids`` of ``master_id``."""

    request_id: str
    route: tuple[Hop, ...]
    hop_index: int
    master_id: str
    slave_ids: frozenset[str]
    size_bits: int
    ttl_s: int
    provenance: Provenance
    keys: tuple[HopKey, ...]

    @property
    def hop(self) -> Hop:
        return self.route[self.hop_index]

    @property
    def is_last_hop(self) -> bool:
        return self.hop_index == len(self.route) - 1

    def problem(self) -> str | None:
        """Why this request is inconsistent (checked before any pool bit is touched), or None."""
        if not 0 <= self.hop_index < len(self.route):
            return "hop_index outside the route"
        if not self.keys or not self.slave_ids:
            return "no keys or no slaves"
        if self.size_bits <= 0 or self.size_bits % 8 or self.ttl_s <= 0:
            return "size must be a positive multiple of 8 and ttl_s positive"
        size_bytes = self.size_bits // 8
        for key in self.keys:
            if sum(s.length for s in key.segments) != size_bytes:
                return "segments do not add up to the key size"
            if key.ciphertext is not None and len(key.ciphertext) != size_bytes:
                return "one-time-pad ciphertext is not the key size"
        return None


def xor_bytes(a: bytes, b: bytes) -> bytes:
    """One-time pad; both operands must have the same length."""
    if len(a) != len(b):
        raise ValueError("one-time pad and message differ in length")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class PeerTransport(ABC):
    """The KM channel as the domain sees it: authenticated, idempotent calls to peers."""

    @abstractmethod
    def relay(self, peer: str, request: RelayRequest) -> None:
        """Deliver a relay request to ``peer``; retries with the same request_id.
        Raises Unavailable if the peer refused or could not be reached."""

    @abstractmethod
    def abort(self, peer: str, request_id: str) -> None:
        """Ask ``peer`` to destroy whatever it reserved under ``request_id`` (best effort)."""

    @abstractmethod
    def sync_pool(self, peer: str, link_id: str, owner: str, sequence: int, offset: int) -> None:
        """Tell ``peer`` that the owner's half of ``link_id`` is used up to (sequence, offset)."""

    @abstractmethod
    def link_halves(self, peer: str) -> list:
        """The peer's own view of its link halves (a list of LinkHalf)."""
