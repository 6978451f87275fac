"""ChangeLog on Redis, in the node's namespace (one hash tag, so it works on Cluster):

  qkms:{N}:changes          hash    change_id -> the change (canonical JSON)
  qkms:{N}:changes:version  int     bumped by every addition
  qkms:{N}:changes:done     set     change_ids this node carried out
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis

from kms.changes import Change, ChangeLog, ordered
from kms.errors import StoreError
from kms.storage.redis_store import run_script

_ADD = """
local added = {}
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then added[#added + 1] = ARGV[i] end
end
if #added > 0 then redis.call('INCR', KEYS[2]) end
return added
"""


class RedisChangeLog(ChangeLog):
    """The change log of node ``kme_id``."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        base = f"qkms:{{{kme_id}}}:changes"
        self._hash, self._version, self._done = base, base + ":version", base + ":done"
        self._add = client.register_script(_ADD)

    def add(self, changes: Sequence[Change]) -> list[Change]:
        if not changes:
            return []
        args = [item for change in changes for item in (change.change_id, change.encode())]
        added = {raw.decode() for raw in run_script(self._add, [self._hash, self._version], args)}
        return [change for change in changes if change.change_id in added]

    def version(self) -> int:
        return int(self._call(self._redis.get, self._version) or 0)

    def read(self) -> tuple[int, list[Change]]:
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                version, raw = pipe.get(self._version).hgetall(self._hash).execute()
        except redis.RedisError as exc:
            raise StoreError() from exc
        return int(version or 0), ordered(Change.from_dict(json.loads(value)) for value in raw.values())

    def mark_done(self, change_id: str) -> bool:
        return bool(self._call(self._redis.sadd, self._done, change_id))

    def done(self) -> frozenset[str]:
        return frozenset(member.decode() for member in self._call(self._redis.smembers, self._done))

    @staticmethod
    def _call(command, *args):
        try:
            return command(*args)
        except redis.RedisError as exc:
            raise StoreError() from exc

