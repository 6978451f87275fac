"""LinkBoard on Redis: one hash per node, one JSON value per link half."""

from __future__ import annotations

import json
from dataclasses import asdict

import redis

from kms.errors import StoreError
from kms.link_board import LinkBoard, LinkHalf


class RedisLinkBoard(LinkBoard):
    """The link board of node ``kme_id`` in the hash ``qkms:{KME_ID}:links``."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        self._key = f"qkms:{{{kme_id}}}:links"

    def publish(self, halves: list[LinkHalf]) -> None:
        if not halves:
            return
        mapping = {f"{h.link_id}|{h.owner}": json.dumps(asdict(h)) for h in halves}
        try:
            self._redis.hset(self._key, mapping=mapping)
        except redis.RedisError as exc:
            raise StoreError() from exc

    def read(self) -> dict[tuple[str, str], LinkHalf]:
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
