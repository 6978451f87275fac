"""SealedItems on Redis: the sealed values of one node, found with SCAN (on every
primary of a Cluster) in the layouts of redis_store, redis_pool and redis_inbox, and
replaced by compare-and-swap in Lua.

  reservations  qkms:{N}:res:<key_ID>            hash field "sealed"; identity key_ID
  pool blocks   qkms:{N|L}:pool:<O>:z members B  -> hash qkms:{N|L}:pool:<O>:b:<B> "sealed";
                                                    identity "pool|L|B"
  inbox blocks  qkms:{N|L}:inbox                 list of JSON {"id", "seq", "sealed"}; identity "inbox|L|id"
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import redis

from kms.errors import StoreError
from kms.sealed_items import SealedItem, SealedItems
from kms.storage.redis_store import run_script

_REPLACE_IN_HASH = """
if redis.call('HGET', KEYS[1], 'sealed') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'sealed', ARGV[2])
  return 1
end
return 0
"""

_REPLACE_IN_LIST = """
local at = redis.call('LPOS', KEYS[1], ARGV[1])
if at then
  redis.call('LSET', KEYS[1], at, ARGV[2])
  return 1
end
return 0
"""


def _link_of(name: str) -> str:
    """The link of a key named qkms:{NODE|LINK}:..."""
    return name[name.index("{") + 1:name.index("}")].split("|", 1)[1]


class RedisSealedItems(SealedItems):
    """The sealed values of node ``kme_id``; see the module docstring."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        self._kme_id = kme_id
        self._replace_in_hash = client.register_script(_REPLACE_IN_HASH)
        self._replace_in_list = client.register_script(_REPLACE_IN_LIST)

    def batches(self, batch_size: int) -> Iterator[list[SealedItem]]:
        try:
            yield from self._reservations(batch_size)
            yield from self._pool_blocks(batch_size)
            yield from self._inbox_blocks(batch_size)
        except redis.RedisError as exc:
            raise StoreError() from exc

    def _names(self, pattern: str, kind: str, batch_size: int) -> Iterator[str]:
        for name in self._redis.scan_iter(match=pattern, count=batch_size, _type=kind):
            yield name.decode()

    def _hash_items(self, names_and_identities: list[tuple[str, str]]) -> list[SealedItem]:
        pipe = self._redis.pipeline(transaction=False)
        for name, _ in names_and_identities:
            pipe.hget(name, "sealed")
        return [SealedItem(("hash", name), identity, sealed)
                for (name, identity), sealed in zip(names_and_identities, pipe.execute()) if sealed is not None]

    def _reservations(self, batch_size: int) -> Iterator[list[SealedItem]]:
        prefix = f"qkms:{{{self._kme_id}}}:res:"
        batch: list[tuple[str, str]] = []
        for name in self._names(prefix + "*", "hash", batch_size):
            batch.append((name, name[len(prefix):]))
            if len(batch) >= batch_size:
                yield self._hash_items(batch)
                batch = []
        if batch:
            yield self._hash_items(batch)

    def _pool_blocks(self, batch_size: int) -> Iterator[list[SealedItem]]:
        for index in self._names(f"qkms:{{{self._kme_id}|*}}:pool:*:z", "zset", batch_size):
            link, prefix = _link_of(index), index[:-1] + "b:"
            blocks = [member.decode() for member in self._redis.zrange(index, 0, -1)]
            for start in range(0, len(blocks), batch_size):
                chunk = blocks[start:start + batch_size]
                yield self._hash_items([(prefix + block, f"pool|{link}|{block}") for block in chunk])

    def _inbox_blocks(self, batch_size: int) -> Iterator[list[SealedItem]]:
        for name in self._names(f"qkms:{{{self._kme_id}|*}}:inbox", "list", batch_size):
            link = _link_of(name)
            for start in range(0, int(self._redis.llen(name)), batch_size):
                entries = self._redis.lrange(name, start, start + batch_size - 1)
                yield [self._inbox_item(name, link, entry) for entry in entries]

    @staticmethod
    def _inbox_item(name: str, link: str, entry: bytes) -> SealedItem:
        data = json.loads(entry)
        return SealedItem(("list", name, entry.decode()), f"inbox|{link}|{data['id']}",
                          base64.b64decode(data["sealed"]))

    def replace(self, item: SealedItem, resealed: bytes) -> bool:
        if item.location[0] == "hash":
            return bool(run_script(self._replace_in_hash, [item.location[1]], [item.sealed, resealed]))
        _, name, entry = item.location
        data = json.loads(entry)
        data["sealed"] = base64.b64encode(resealed).decode()
        return bool(run_script(self._replace_in_list, [name], [entry, json.dumps(data)]))
