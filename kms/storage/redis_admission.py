"""AdmissionCounters on Redis: one Lua script per admission, on the Redis clock.

Layout (the node's hash tag, so both keys of an account share a Cluster slot):
  qkms:{KME}:adm:<account>:bucket   hash  tokens, at (microseconds); expires once full again
  qkms:{KME}:adm:<account>:busy     zset  ticket -> lease end (microseconds)
"""

from __future__ import annotations

import math

import redis

from kms.admission import AdmissionCounters, Verdict
from kms.errors import StoreError
from kms.storage.redis_store import run_script

_ADMIT = """
local rate, burst, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_us, ticket = tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if limit >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= limit then return {'busy', '0'} end
end
if rate > 0 then
  local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
  local tokens, at = tonumber(b[1]) or burst, tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000)
  if tokens < 1 then return {'rate', tostring(math.ceil((1 - tokens) / rate * 1000))} end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
end
if limit >= 0 then
  redis.call('ZADD', KEYS[2], now + lease_us, ticket)
  redis.call('PEXPIRE', KEYS[2], math.ceil(lease_us / 1000) + 1000)
end
return {'ok', '0'}
"""


class RedisAdmissionCounters(AdmissionCounters):
    """The admission counters of node ``kme_id``; see the module docstring."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        self._prefix = f"qkms:{{{kme_id}}}:adm:"
        self._admit = client.register_script(_ADMIT)

    def admit(self, account: str, ticket: str, rate_per_s: float | None, burst: int,
              max_in_progress: int | None, lease_s: float) -> Verdict:
        keys = [self._prefix + account + ":bucket", self._prefix + account + ":busy"]
        args = [rate_per_s or 0, burst, -1 if max_in_progress is None else max_in_progress,
                math.ceil(lease_s * 1_000_000), ticket]
        outcome, wait_ms = run_script(self._admit, keys, args)
        return Verdict(outcome.decode(), int(wait_ms) / 1000)

    def release(self, account: str, ticket: str) -> None:
        try:
            self._redis.zrem(self._prefix + account + ":busy", ticket)
        except redis.RedisError as exc:
            raise StoreError() from exc
