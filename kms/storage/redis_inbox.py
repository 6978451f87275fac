"""BlockInbox on Redis: one list per link end of sealed blocks, taken with LPOP."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import redis

from kms.errors import StoreError
from kms.inbox import BlockInbox
from kms.keys import KeyBlock
from kms.sealing import Sealer


class RedisBlockInbox(BlockInbox):
    """The inbox of node ``kme_id``: ``qkms:{KME_ID|link}:inbox`` (a list)."""

    def __init__(self, client: redis.Redis, sealer: Sealer, kme_id: str):
        self._redis = client
        self._sealer = sealer
        self._kme_id = kme_id

    def _key(self, link_id: str) -> str:
        return f"qkms:{{{self._kme_id}|{link_id}}}:inbox"

    def _identity(self, link_id: str, block_id: str) -> str:
        return f"inbox|{link_id}|{block_id}"

    def put(self, link_id: str, blocks: Sequence[KeyBlock]) -> None:
        entries = [json.dumps({"id": b.block_id, "seq": b.sequence, "sealed": base64.b64encode(
            self._sealer.seal(b.material, self._identity(link_id, b.block_id))).decode()}) for b in blocks]
        if entries:
            try:
                self._redis.rpush(self._key(link_id), *entries)
            except redis.RedisError as exc:
                raise StoreError() from exc

    def take(self, link_id: str, max_blocks: int) -> list[KeyBlock]:
        try:
            entries = self._redis.lpop(self._key(link_id), max_blocks) or []
        except redis.RedisError as exc:
            raise StoreError() from exc
        return [self._block(link_id, json.loads(entry)) for entry in entries]

    def _block(self, link_id: str, entry: dict) -> KeyBlock:
        sealed = base64.b64decode(entry["sealed"])
        return KeyBlock(entry["id"], self._sealer.unseal(sealed, self._identity(link_id, entry["id"])), entry["seq"])

    def waiting(self, link_id: str) -> int:
        try:
            return int(self._redis.llen(self._key(link_id)))
        except redis.RedisError as exc:
            raise StoreError() from exc
