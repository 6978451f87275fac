"""Small immutable domain objects: keys, their provenance, key requests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HopProvenance:
    """What made one hop's material: the link, its two ends, the material the policy
    chose (``qkd``, ``pqc`` or ``hybrid``) and the sources and algorithms behind it."""

    link_id: str
    sender: str
    receiver: str
    material: str
    sources: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"link": self.link_id, "from": self.sender, "to": self.receiver, "material": self.material,
                "sources": list(self.sources), "algorithms": list(self.algorithms)}

    @classmethod
    def from_dict(cls, data: dict) -> "HopProvenance":
        return cls(str(data["link"]), str(data["from"]), str(data["to"]), str(data["material"]),
                   tuple(map(str, data.get("sources", ()))), tuple(map(str, data.get("algorithms", ()))))


@dataclass(frozen=True)
class Provenance:
    """Where a key's bits came from, recorded with every key for auditors.

    ``sources`` are source kinds (``csprng``, ``qkd-sim``, ``ml-kem``...), ``algorithms``
    the algorithms involved, ``route`` the KME_IDs the key travelled through. A key
    that went to several nodes (the master's copy of a multicast key) lists each
    route in ``routes`` instead. ``hops`` says, per hop, what its material was made of.
    """

    sources: tuple[str, ...]
    algorithms: tuple[str, ...] = ()
    route: tuple[str, ...] = ()
    routes: tuple[tuple[str, ...], ...] = ()
    hops: tuple[HopProvenance, ...] = ()

    def to_dict(self) -> dict[str, list]:
        out: dict[str, list] = {"sources": list(self.sources), "algorithms": list(self.algorithms),
                                "route": list(self.route)}
        if self.routes:
            out["routes"] = [list(route) for route in self.routes]
        if self.hops:
            out["hops"] = [hop.to_dict() for hop in self.hops]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Provenance":
        return cls.from_json_dict(json.loads(text))

    @classmethod
    def from_json_dict(cls, data: dict) -> "Provenance":
        return cls(tuple(map(str, data["sources"])), tuple(map(str, data.get("algorithms", ()))),
                   tuple(map(str, data.get("route", ()))),
                   tuple(tuple(map(str, route)) for route in data.get("routes", ())),
                   tuple(HopProvenance.from_dict(hop) for hop in data.get("hops", ())))


@dataclass(frozen=True, repr=False)
class Key:
    """One delivered or reserved key. ``repr`` never shows the material."""

    key_id: str
    material: bytes
    provenance: Provenance

    @property
    def size_bits(self) -> int:
        return len(self.material) * 8

    def __repr__(self) -> str:
        return f"Key(key_id={self.key_id!r}, size_bits={self.size_bits})"


@dataclass(frozen=True)
class Reservation:
    """A key held at a node for the slave SAEs that have not fetched it yet."""

    key: Key
    master_id: str
    slave_ids: frozenset[str]


@dataclass(frozen=True)
class KeyRequest:
    """A validated ``enc_keys`` request (sizes in bits). ``requires`` names the kinds of
    source (``qkd``, ``pqc``) every hop's material must include (``extension_mandatory``)."""

    number: int
    size_bits: int
    additional_slave_ids: tuple[str, ...] = ()
    extension_mandatory: tuple[dict[str, Any], ...] = ()
    extension_optional: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class KeyOrder:
    """Keys to make for ``master_id`` and reserve, for ``ttl_s``, for the slave SAEs of
    each node in ``slaves_by_node`` (sizes in bits), from material that includes every
    kind of source in ``requires`` on every hop."""

    master_id: str
    slaves_by_node: dict[str, frozenset[str]]
    number: int
    size_bits: int
    ttl_s: int
    requires: frozenset[str] = frozenset()


@dataclass(frozen=True)
class KeyBlock:
    """A run of secret bits from a key source, identical at both ends of a link.

    ``sequence`` orders a link's blocks (e.g. the QKD frame number); both ends see
    the same block under the same id and sequence.
    """

    block_id: str
    material: bytes = field(repr=False)
    sequence: int = 0

    @property
    def size_bits(self) -> int:
        return len(self.material) * 8
