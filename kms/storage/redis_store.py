"""KeyStore on Redis: sealed values, Lua scripts for every check-and-take.

Layout (one hash tag per node so multi-key scripts work on Redis Cluster):
  qkms:{KME}:res:<key_ID>   hash: sealed, size, prov, master, pending, s:<slave>=1
  qkms:{KME}:held           sorted set: reservation key -> expiry (Redis clock, s),
                            how many reservations the node holds, for its capacity
  qkms:{KME}:held:m:<SAE>   the same for one master SAE, for its quota
  qkms:{KME}:charge:<account>:<window>  use of a rate quota in one fixed window
Redis expiry destroys a reservation, material included, when its time is up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from kms.errors import (BadRequest, DuplicateKeyId, KeysNotFound, QuotaExceeded, StoreError, StoreFull, Unauthorized,
                        Unavailable)
from kms.keys import Key, Provenance, Reservation
from kms.sealing import Sealer
from kms.storage.redis_client import Replication
from kms.store import REQUEST_BUSY_S, REQUEST_MEMORY_S, KeyStore

log = logging.getLogger("qkms.store")

_RESERVE = """
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then return i end
end
local ttl, index, held, capacity = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local quota, mprefix = tonumber(ARGV[5]), ARGV[6]
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', held, '-inf', now)
if capacity >= 0 and redis.call('ZCARD', held) + #KEYS > capacity then return -1 end
if quota >= 0 then
  local adding, at = {}, 7
  for i = 1, #KEYS do
    adding[ARGV[at + 3]] = (adding[ARGV[at + 3]] or 0) + 1
    at = at + 5 + tonumber(ARGV[at + 4])
  end
  for master, n in pairs(adding) do
    redis.call('ZREMRANGEBYSCORE', mprefix .. master, '-inf', now)
    if redis.call('ZCARD', mprefix .. master) + n > quota then return -2 end
  end
end
local at = 7
for i, k in ipairs(KEYS) do
  local n = tonumber(ARGV[at + 4])
  redis.call('HSET', k, 'sealed', ARGV[at], 'size', ARGV[at + 1],
             'prov', ARGV[at + 2], 'master', ARGV[at + 3], 'pending', n)
  for j = 1, n do redis.call('HSET', k, 's:' .. ARGV[at + 4 + j], 1) end
  redis.call('EXPIRE', k, ttl)
  redis.call('ZADD', held, now + ttl, k)
  local mheld = mprefix .. ARGV[at + 3]
  redis.call('ZADD', mheld, now + ttl, k)
  if redis.call('TTL', mheld) < ttl then redis.call('EXPIRE', mheld, ttl) end
  if index ~= '' then redis.call('SADD', index, k) end
  at = at + 5 + n
end
if redis.call('TTL', held) < ttl then redis.call('EXPIRE', held, ttl) end
if index ~= '' then redis.call('EXPIRE', index, ttl) end
return 0
"""

_CLAIM = """
local slave, master, held, mheld = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for i, k in ipairs(KEYS) do
  if redis.call('HGET', k, 'master') ~= master then return {'unknown', i} end
end
for i, k in ipairs(KEYS) do
  if redis.call('HEXISTS', k, 's:' .. slave) == 0 then return {'unauthorized', i} end
end
local out = {'ok'}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'sealed', 'prov')
  out[#out + 1] = v[1]
  out[#out + 1] = v[2]
  redis.call('HDEL', k, 's:' .. slave)
  if redis.call('HINCRBY', k, 'pending', -1) <= 0 then
    redis.call('DEL', k)
    redis.call('ZREM', held, k)
    redis.call('ZREM', mheld, k)
  end
end
return out
"""

_BEGIN = """
if redis.call('SET', KEYS[1], 'busy', 'NX', 'EX', ARGV[1]) then return 'new' end
return redis.call('GET', KEYS[1])
"""

_ABORT = """
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local master = redis.call('HGET', k, 'master')
  if master then redis.call('ZREM', ARGV[2] .. master, k) end
  n = n + redis.call('DEL', k)
  redis.call('ZREM', KEYS[3], k)
end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], 'aborted', 'EX', ARGV[1])
return n
"""

_WITHDRAW = """
for _, k in ipairs(KEYS) do
  redis.call('DEL', k)
  for i = 1, #ARGV do redis.call('ZREM', ARGV[i], k) end
end
return #KEYS
"""

_HELD = """
return redis.call('ZCOUNT', KEYS[1], '(' .. redis.call('TIME')[1], '+inf')
"""

_CHARGE = """
local amount, limit, window_s = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local key = KEYS[1] .. ':' .. math.floor(tonumber(redis.call('TIME')[1]) / window_s)
if tonumber(redis.call('GET', key) or '0') + amount > limit then return 0 end
redis.call('INCRBY', key, amount)
redis.call('EXPIRE', key, window_s * 2)
return 1
"""

def run_script(script, keys: list[str], args: list):
    """Run a registered Lua script; a Redis failure becomes StoreError (logged here,
    never shown to clients)."""
    try:
        return script(keys=keys, args=args)
    except redis.RedisError as exc:
        log.error("Redis script failed: %s", exc)
        raise StoreError() from exc


class RedisKeyStore(KeyStore):
    """Reservations in one Redis (standalone, Sentinel-managed or Cluster)."""

    def __init__(self, client: redis.Redis, sealer: Sealer, kme_id: str, capacity_keys: int | None = None,
                 quota_keys_per_master: int | None = None, replication: Replication | None = None):
        self._redis = client
        self._replication = replication or Replication(client)
        self._sealer = sealer
        self._capacity_keys = -1 if capacity_keys is None else capacity_keys
        self._quota = -1 if quota_keys_per_master is None else quota_keys_per_master
        self._prefix = f"qkms:{{{kme_id}}}:res:"
        self._requests = f"qkms:{{{kme_id}}}:req:"
        self._held = f"qkms:{{{kme_id}}}:held"
        self._held_by_master = f"qkms:{{{kme_id}}}:held:m:"
        self._reserve = client.register_script(_RESERVE)
        self._claim = client.register_script(_CLAIM)
        self._begin = client.register_script(_BEGIN)
        self._abort = client.register_script(_ABORT)
        self._count_held = client.register_script(_HELD)
        self._charge = client.register_script(_CHARGE)
        self._withdraw = client.register_script(_WITHDRAW)
        self._charges = f"qkms:{{{kme_id}}}:charge:"

    def _key(self, key_id: str) -> str:
        return self._prefix + key_id

    def _record(self, reservation: Reservation) -> list[bytes | str | int]:
        key = reservation.key
        slaves = sorted(reservation.slave_ids)
        sealed = self._sealer.seal(key.material, key.key_id)
        return [sealed, key.size_bits, key.provenance.to_json(), reservation.master_id,
                len(slaves), *slaves]

    def reserve(self, reservations: Sequence[Reservation], ttl_s: int, request_id: str | None = None) -> None:
        if not reservations:
            return
        keys = [self._key(r.key.key_id) for r in reservations]
        if len(set(keys)) != len(keys):
            raise DuplicateKeyId()
        args: list = [ttl_s, self._requests + request_id + ":keys" if request_id else "",
                      self._held, self._capacity_keys, self._quota, self._held_by_master]
        for reservation in reservations:
            args.extend(self._record(reservation))
        outcome = run_script(self._reserve, keys, args)
        if outcome == -1:
            raise StoreFull()
        if outcome == -2:
            raise QuotaExceeded()
        if outcome:
            raise DuplicateKeyId()
        self._confirm_or_undo(keys, reservations)

    def _confirm_or_undo(self, keys: list[str], reservations: Sequence[Reservation]) -> None:
        """A reservation no replica holds could vanish at a failover after its master got
        the key: withdraw it (nobody has it yet) and fail."""
        try:
            self._replication.confirm(keys[0])
        except Unavailable:
            masters = {r.master_id for r in reservations}
            run_script(self._withdraw, keys, [self._held, *(self._held_by_master + m for m in masters)])
            raise

    def claim(self, key_ids: Sequence[str], slave_id: str, master_id: str) -> list[Key]:
        if len(set(key_ids)) != len(key_ids):
            raise BadRequest("key_IDs must not repeat a key_ID")
        keys = [self._key(key_id) for key_id in key_ids]
        reply = run_script(self._claim, keys, [slave_id, master_id, self._held,
                                               self._held_by_master + master_id])
        verdict = reply[0].decode()
        if verdict == "unknown":
            raise KeysNotFound(details=[{"key_ID": key_ids[int(reply[1]) - 1]}])
        if verdict == "unauthorized":
            raise Unauthorized("caller is not a slave SAE of the requested keys")
        # Not handed out unless replicated: after a failover a claim no replica saw
        # would let the same keys be claimed again.
        self._replication.confirm(keys[0])
        pairs = zip(reply[1::2], reply[2::2])
        return [Key(key_id, self._sealer.unseal(sealed, key_id), Provenance.from_json(prov))
                for key_id, (sealed, prov) in zip(key_ids, pairs)]

    def begin_request(self, request_id: str) -> str:
        return run_script(self._begin, [self._requests + request_id], [REQUEST_BUSY_S]).decode()

    def end_request(self, request_id: str, succeeded: bool) -> None:
        try:
            self._redis.set(self._requests + request_id, "done" if succeeded else "failed", ex=REQUEST_MEMORY_S)
        except redis.RedisError as exc:
            raise StoreError() from exc

    def abort_request(self, request_id: str) -> int:
        keys = [self._requests + request_id, self._requests + request_id + ":keys", self._held]
        return int(run_script(self._abort, keys, [REQUEST_MEMORY_S, self._held_by_master]))

    def pending_count(self, master_id: str | None = None) -> int:
        held = self._held if master_id is None else self._held_by_master + master_id
        return int(run_script(self._count_held, [held], []))

    def charge(self, account: str, amount: int, limit: int, window_s: int) -> None:
        if not run_script(self._charge, [self._charges + account], [amount, limit, window_s]):
            raise QuotaExceeded()

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._redis.close()

