"""PoolStore on Redis: sealed blocks, a byte-usage map per block, Lua for every take.

Layout for node N, link L, owner O (one hash tag per node and link, so a link's keys
share a Redis Cluster slot):
  qkms:{N|L}:pool:O:z          zset  block_id scored by sequence
  qkms:{N|L}:pool:O:bits       int   unused bits in this half
  qkms:{N|L}:pool:O:hw         int   highest sequence ever added (a block is never re-added)
  qkms:{N|L}:pool:O:stats      hash  carved_bits, taken_bits, discarded_bits (cumulative)
  qkms:{N|L}:pool:O:b:<block>  hash  sealed, len, left, seq
  qkms:{N|L}:pool:O:u:<block>  string, one byte per key byte: "\\1" once used
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import redis

from kms.errors import Unavailable
from kms.keys import KeyBlock
from kms.pools import MAX_SEGMENTS_PER_KEY, Carved, PoolMismatch, PoolStore, Segment
from kms.storage.redis_store import run_script
from kms.sealing import Sealer
from kms.storage.redis_client import Replication

_LUA_DELETE_IF_SPENT = """
local function spend(zset, bprefix, uprefix, id, nbytes)
  -- (Lua's -0 would reach Redis as "-0", which HINCRBY rejects)
  if nbytes == 0 then return end
  local left = redis.call('HINCRBY', bprefix .. id, 'left', 0 - nbytes)
  if left <= 0 then
    redis.call('DEL', bprefix .. id, uprefix .. id)
    redis.call('ZREM', zset, id)
  end
end
"""

_ADD = """
local added, bits = 0, 0
local high = tonumber(redis.call('GET', KEYS[3]) or '-1')
for i = 3, #ARGV, 4 do
  local id, seq, len, sealed = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
  if seq > high then
    redis.call('HSET', ARGV[1] .. id, 'sealed', sealed, 'len', len, 'left', len, 'seq', seq)
    redis.call('ZADD', KEYS[1], seq, id)
    added, bits, high = added + 1, bits + len * 8, seq
  end
end
redis.call('INCRBY', KEYS[2], bits)
redis.call('SET', KEYS[3], high)
return added
"""

_CARVE = _LUA_DELETE_IF_SPENT + """
local bprefix, uprefix, maxseg = ARGV[1], ARGV[2], tonumber(ARGV[3])
local total = 0
for i = 4, #ARGV do total = total + tonumber(ARGV[i]) end
if tonumber(redis.call('GET', KEYS[2]) or '0') < total * 8 then return {'short'} end
-- Plan every key first (reads only), so a refusal changes nothing.
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local plans, state, sealed, order, bi = {}, {}, {}, {}, 1
for k = 4, #ARGV do
  local need, segs = tonumber(ARGV[k]), {}
  while need > 0 do
    local id = ids[bi]
    if not state[id] then
      local h = redis.call('HMGET', bprefix .. id, 'len', 'left', 'sealed')
      state[id] = {tonumber(h[1]), tonumber(h[2])}
      sealed[id] = h[3]
      order[#order + 1] = id
    end
    local blen, bleft = state[id][1], state[id][2]
    local take = math.min(bleft, need)
    segs[#segs + 1] = {id, blen - bleft, take}
    state[id][2] = bleft - take
    need = need - take
    if state[id][2] == 0 then bi = bi + 1 end
  end
  if #segs > maxseg then return {'fragmented'} end
  plans[#plans + 1] = segs
end
local out = {'ok'}
for _, segs in ipairs(plans) do
  out[#out + 1] = #segs
  for _, seg in ipairs(segs) do
    redis.call('SETRANGE', uprefix .. seg[1], seg[2], string.rep('\\1', seg[3]))
    out[#out + 1] = seg[1]
    out[#out + 1] = seg[2]
    out[#out + 1] = seg[3]
  end
end
for _, id in ipairs(order) do
  out[#out + 1] = id
  out[#out + 1] = sealed[id]
  local h = redis.call('HMGET', bprefix .. id, 'left')
  spend(KEYS[1], bprefix, uprefix, id, tonumber(h[1]) - state[id][2])
end
redis.call('DECRBY', KEYS[2], total * 8)
redis.call('HINCRBY', KEYS[3], 'carved_bits', total * 8)
return out
"""

_TAKE = _LUA_DELETE_IF_SPENT + """
local bprefix, uprefix = ARGV[1], ARGV[2]
local seen, order, sealed, total = {}, {}, {}, 0
for i = 3, #ARGV, 3 do
  local id, off, len = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if not seen[id] then
    local h = redis.call('HMGET', bprefix .. id, 'len', 'sealed')
    if not h[1] then return {'missing', id} end
    seen[id] = {tonumber(h[1])}
    sealed[id] = h[2]
    order[#order + 1] = id
  end
  if off + len > seen[id][1] then return {'bounds', id} end
  local used = redis.call('GETRANGE', uprefix .. id, off, off + len - 1)
  if string.find(used, '\\1', 1, true) then return {'used', id} end
  for j = 2, #seen[id] do
    local iv = seen[id][j]
    if off < iv[1] + iv[2] and iv[1] < off + len then return {'overlap', id} end
  end
  seen[id][#seen[id] + 1] = {off, len}
  total = total + len
end
local out = {'ok'}
for _, id in ipairs(order) do
  out[#out + 1] = id
  out[#out + 1] = sealed[id]
end
for i = 3, #ARGV, 3 do
  local id, off, len = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  redis.call('SETRANGE', uprefix .. id, off, string.rep('\\1', len))
  spend(KEYS[1], bprefix, uprefix, id, len)
end
redis.call('DECRBY', KEYS[2], total * 8)
redis.call('HINCRBY', KEYS[3], 'taken_bits', total * 8)
return out
"""

_DISCARD = _LUA_DELETE_IF_SPENT + """
local bprefix, uprefix = ARGV[1], ARGV[2]
local seq, offset = tonumber(ARGV[3]), tonumber(ARGV[4])
local dropped = 0
-- The bound is ARGV[3] as sent: Lua turns a number into a string with 14 significant
-- digits, which rounds sequences above 1e14 (a microsecond clock) past the block at seq.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])) do
  dropped = dropped + tonumber(redis.call('HGET', bprefix .. id, 'left'))
  redis.call('DEL', bprefix .. id, uprefix .. id)
  redis.call('ZREM', KEYS[1], id)
end
if offset > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], seq, seq)) do
    local upto = math.min(offset, tonumber(redis.call('HGET', bprefix .. id, 'len')))
    local used = redis.call('GETRANGE', uprefix .. id, 0, upto - 1)
    local _, ones = string.gsub(used, '\\1', '')
    local fresh = upto - ones
    redis.call('SETRANGE', uprefix .. id, 0, string.rep('\\1', upto))
    dropped = dropped + fresh
    spend(KEYS[1], bprefix, uprefix, id, fresh)
  end
end
redis.call('DECRBY', KEYS[2], dropped * 8)
redis.call('HINCRBY', KEYS[3], 'discarded_bits', dropped * 8)
return dropped
"""


class RedisPoolStore(PoolStore):
    """Link pools of one node in Redis; see the module docstring for the layout."""

    def __init__(self, client: redis.Redis, sealer: Sealer, kme_id: str, replication: Replication | None = None):
        self._redis = client
        self._replication = replication or Replication(client)
        self._sealer = sealer
        self._kme_id = kme_id
        self._add = client.register_script(_ADD)
        self._carve = client.register_script(_CARVE)
        self._take = client.register_script(_TAKE)
        self._discard = client.register_script(_DISCARD)

    def _base(self, link_id: str, owner: str) -> str:
        return f"qkms:{{{self._kme_id}|{link_id}}}:pool:{owner}:"

    def _keys(self, link_id: str, owner: str) -> list[str]:
        base = self._base(link_id, owner)
        return [base + "z", base + "bits", base + "hw", base + "stats"]

    def _use_keys(self, link_id: str, owner: str) -> list[str]:
        z, bits, _, stats = self._keys(link_id, owner)
        return [z, bits, stats]

    def _prefixes(self, link_id: str, owner: str) -> list[str]:
        base = self._base(link_id, owner)
        return [base + "b:", base + "u:"]

    def _identity(self, link_id: str, block_id: str) -> str:
        return f"pool|{link_id}|{block_id}"

    def add_blocks(self, link_id: str, owner: str, blocks: Sequence[KeyBlock]) -> int:
        blocks = [block for block in blocks if block.material]
        args: list = self._prefixes(link_id, owner)
        for block in sorted(blocks, key=lambda b: b.sequence):
            sealed = self._sealer.seal(block.material, self._identity(link_id, block.block_id))
            args += [block.block_id, block.sequence, len(block.material), sealed]
        return int(run_script(self._add, self._keys(link_id, owner)[:3], args)) if blocks else 0

    def carve(self, link_id: str, owner: str, sizes_bytes: Sequence[int]) -> list[Carved]:
        reply = run_script(self._carve, self._use_keys(link_id, owner),
                          [*self._prefixes(link_id, owner), MAX_SEGMENTS_PER_KEY, *sizes_bytes])
        if reply[0] == b"short":
            raise Unavailable("not enough key material on the link")
        if reply[0] == b"fragmented":
            raise Unavailable(f"a key would span more than {MAX_SEGMENTS_PER_KEY} pool blocks")
        # Bits a failover could give back must never leave as a key or a pad.
        self._replication.confirm(self._use_keys(link_id, owner)[0])
        per_key, at = [], 1
        for _ in sizes_bytes:
            count = int(reply[at])
            flat = reply[at + 1:at + 1 + 3 * count]
            per_key.append(tuple(Segment(flat[i].decode(), int(flat[i + 1]), int(flat[i + 2]))
                                 for i in range(0, len(flat), 3)))
            at += 1 + 3 * count
        blocks = self._unseal_pairs(link_id, reply[at:])
        return [Carved(segs, _cut(blocks, segs)) for segs in per_key]

    def take_segments(self, link_id: str, owner: str, keys: Sequence[Sequence[Segment]]) -> list[bytes]:
        if any(seg.offset < 0 or seg.length <= 0 for segments in keys for seg in segments):
            raise PoolMismatch("pool segment out of bounds")
        args: list = self._prefixes(link_id, owner)
        for segments in keys:
            for seg in segments:
                args += [seg.block_id, seg.offset, seg.length]
        reply = run_script(self._take, self._use_keys(link_id, owner), args)
        if reply[0] != b"ok":
            raise PoolMismatch(f"pool segment {reply[0].decode()}: block {reply[1].decode()}")
        self._replication.confirm(self._use_keys(link_id, owner)[0])
        blocks = self._unseal_pairs(link_id, reply[1:])
        return [_cut(blocks, segments) for segments in keys]

    def discard_before(self, link_id: str, owner: str, sequence: int, offset: int) -> int:
        return int(run_script(self._discard, self._use_keys(link_id, owner),
                             [*self._prefixes(link_id, owner), sequence, offset]))

    def head(self, link_id: str, owner: str) -> tuple[int, int] | None:
        first = self._redis.zrange(self._keys(link_id, owner)[0], 0, 0)
        if not first:
            return None
        length, left, seq = self._redis.hmget(self._prefixes(link_id, owner)[0] + first[0].decode(),
                                              "len", "left", "seq")
        return int(seq), int(length) - int(left)

    def available_bits(self, link_id: str, owner: str) -> int:
        return int(self._redis.get(self._keys(link_id, owner)[1]) or 0)

    def usage_bits(self, link_id: str, owner: str) -> dict[str, int]:
        raw = self._redis.hgetall(self._keys(link_id, owner)[3])
        return {name: int(raw.get(name.encode(), 0)) for name in ("carved_bits", "taken_bits", "discarded_bits")}

    def last_sequence(self, link_id: str, owner: str) -> int | None:
        last = self._redis.zrange(self._keys(link_id, owner)[0], -1, -1, withscores=True)
        return int(last[0][1]) if last else None

    def block_digests(self, link_id: str, owner: str) -> dict[int, str]:
        bprefix, uprefix = self._prefixes(link_id, owner)
        digests = {}
        for raw_id, sequence in self._redis.zrange(self._keys(link_id, owner)[0], 0, -1, withscores=True):
            block_id = raw_id.decode()
            sealed, length = self._redis.hmget(bprefix + block_id, "sealed", "len")
            if sealed is None:
                continue
            material = np.frombuffer(self._sealer.unseal(sealed, self._identity(link_id, block_id)), np.uint8)
            used = np.zeros(int(length), np.uint8)
            marks = np.frombuffer(self._redis.get(uprefix + block_id) or b"", np.uint8)
            used[:marks.size] = marks
            free = np.flatnonzero(used == 0)
            digests[int(sequence)] = hashlib.sha256(free.astype("<u4").tobytes() + material[free].tobytes()).hexdigest()
        return digests

    def _unseal_pairs(self, link_id: str, flat: list) -> dict[str, bytes]:
        return {flat[i].decode(): self._sealer.unseal(flat[i + 1], self._identity(link_id, flat[i].decode()))
                for i in range(0, len(flat), 2)}


def _cut(blocks: dict[str, bytes], segments: Sequence[Segment]) -> bytes:
    return b"".join(blocks[s.block_id][s.offset:s.offset + s.length] for s in segments)
