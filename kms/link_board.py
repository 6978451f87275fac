"""The link board: what a node knows about every link half in the network.

The link manager process writes it (its own links from its pools and sources, the
other nodes' links from polling them over the KM channel); request handlers read it
to route and to report status. Entries older than ``STALE_AFTER_S`` count as down.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import redis

from kms.errors import StoreError

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


class RedisLinkBoard:
    """The link board of node ``kme_id`` in one Redis hash."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        self._key = f"qkms:{{{kme_id}}}:links"

    def publish(self, halves: list[LinkHalf]) -> None:
        """Record observations (each stamped by its observer)."""
        if not halves:
            return
        mapping = {f"{h.link_id}|{h.owner}": json.dumps(asdict(h)) for h in halves}
        try:
            self._redis.hset(self._key, mapping=mapping)
        except redis.RedisError as exc:
            raise StoreError() from exc

    def read(self) -> dict[tuple[str, str], LinkHalf]:
        """Every recorded half, by (link_id, owner)."""
        try:
            raw = self._redis.hgetall(self._key)
        except redis.RedisError as exc:
            raise StoreError() from exc
        halves = (_half(json.loads(value)) for value in raw.values())
        return {(h.link_id, h.owner): h for h in halves}


def _half(data: dict) -> LinkHalf:
    for name in ("sources", "algorithms", "held_peer_sequences"):
        data[name] = tuple(data.get(name, ()))
    return LinkHalf(**data)
