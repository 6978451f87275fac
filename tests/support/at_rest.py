"""Reading everything a Redis holds, to check that no key material is stored in the clear."""

from __future__ import annotations

import base64

import redis


def dump(raw: redis.Redis) -> list[bytes]:
    """Every key name and every value (hash fields, set and zset members, strings)."""
    out = []
    for name in raw.scan_iter():
        out.append(name)
        kind = raw.type(name)
        if kind == b"hash":
            out.extend(part for item in raw.hgetall(name).items() for part in item)
        elif kind == b"set":
            out.extend(raw.smembers(name))
        elif kind == b"zset":
            out.extend(raw.zrange(name, 0, -1))
        elif kind == b"list":
            out.extend(raw.lrange(name, 0, -1))
        else:
            assert kind == b"string", (name, kind)
            out.append(raw.get(name))
    return out


def encodings(material: bytes) -> list[bytes]:
    """The forms key material could be written in: raw, hex, Base64."""
    return [material, material.hex().encode(), material.hex().upper().encode(),
            base64.b64encode(material), base64.urlsafe_b64encode(material),
            base64.b64encode(material).rstrip(b"=")]
