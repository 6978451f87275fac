"""SequenceLedger on Redis: ``qkms:{KME_ID|name}:ledger`` (an integer), advanced by Lua."""

from __future__ import annotations

import redis

from kms.errors import StoreError
from kms.sequence_ledger import SequenceLedger, check_sequence
from kms.storage.redis_store import run_script

_ADVANCE = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class RedisSequenceLedger(SequenceLedger):
    """The ledger of node ``kme_id``; one key per name."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        self._kme_id = kme_id
        self._advance = client.register_script(_ADVANCE)

    def _key(self, name: str) -> str:
        return f"qkms:{{{self._kme_id}|{name}}}:ledger"

    def advance(self, name: str, sequence: int) -> bool:
        return run_script(self._advance, [self._key(name)], [check_sequence(sequence)]) == 1

    def newest(self, name: str) -> int | None:
        try:
            value = self._redis.get(self._key(name))
        except redis.RedisError as exc:
            raise StoreError() from exc
        return None if value is None else int(value)
