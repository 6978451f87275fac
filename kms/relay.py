"""Trusted-node key relay (ITU-T Y.3803 style): its messages and its algorithm.

A key travels hop by hop. On the first hop of each destination's route the key *is*
the carved link material (both ends carve the same segments); on every later hop it
is one-time-pad encrypted with fresh link material of that hop, decrypted and
re-encrypted at each trusted node and never stored there. Only the last node of a
route reserves the key, for its own slave SAEs.

Each hop's material comes from the pool(s) its link's policy allows (kms/policies.py,
kms/hop_material.py): the originating node plans every hop of a route (``hop_pools``)
and each node on it carves its hop as planned; the plan travels with the request.

A receiving node trusts its peers' certificates, not their claims: every relay hop is
checked once, before any pool bit is touched, against this node's own configuration
(:func:`check_relay`, including each hop's planned material against the link's
policy), and the key's provenance is recorded from this node's own view of the links
and the plan.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from kms.config import LimitsConfig, NodeConfig
from kms.errors import BadRequest, Conflict, QkmsError, Unavailable
from kms.hop_material import HopMaterial, KeyParties
from kms.keys import Key, Provenance, Reservation
from kms.policies import ALLOWED, allowed
from kms.pools import MAX_BLOCK_ID_CHARS, MAX_SEGMENTS_PER_KEY, PoolStore, Segment
from kms.routing import Hop
from kms.store import KeyStore

log = logging.getLogger("qkms.relay")


@dataclass(frozen=True, repr=False)
class HopKey:
    """One key on one hop: where the pad came from (``segments`` of the QKD pool, or of
    the PQC pool on a ``pqc`` hop; on a ``hybrid`` hop ``pqc_segments`` too) and, unless
    the pad is the key, the one-time-pad ciphertext."""

    key_id: str
    segments: tuple[Segment, ...]
    ciphertext: bytes | None = None
    pqc_segments: tuple[Segment, ...] = ()

    def __repr__(self) -> str:
        return f"HopKey(key_id={self.key_id!r}, segments={len(self.segments)})"


@dataclass(frozen=True)
class RelayRequest:
    """Deliver ``keys`` over ``route[hop_index]`` towards the route's last node, where
    they are reserved for ``slave_ids`` of ``master_id``. ``request_id`` names this
    relay chain (one per destination of an enc_keys request). ``hop_pools`` is the
    material planned for each hop of the route (``qkd``, ``pqc``, ``hybrid``); empty
    means QKD on every hop (peers that predate link policies)."""

    request_id: str
    route: tuple[Hop, ...]
    hop_index: int
    master_id: str
    slave_ids: frozenset[str]
    size_bits: int
    ttl_s: int
    keys: tuple[HopKey, ...]
    hop_pools: tuple[str, ...] = ()

    @property
    def hop(self) -> Hop:
        return self.route[self.hop_index]

    def material(self, index: int) -> str:
        """The material planned for hop ``index``."""
        return self.hop_pools[index] if self.hop_pools else "qkd"

    @property
    def plan(self) -> tuple[str, ...]:
        return tuple(self.material(i) for i in range(len(self.route)))

    @property
    def parties(self) -> KeyParties:
        return KeyParties(self.master_id, self.slave_ids)

    @property
    def is_last_hop(self) -> bool:
        return self.hop_index == len(self.route) - 1


class PeerTransport(ABC):
    """The KM channel as the domain sees it: authenticated, idempotent calls to peers."""

    @abstractmethod
    def relay(self, peer: str, request: RelayRequest) -> None:
        """Deliver a relay request to ``peer``; retries transient failures with the same
        request_id. Raises Unavailable if the peer refused or could not be reached."""

    @abstractmethod
    def abort(self, peer: str, request_id: str) -> None:
        """Ask ``peer`` to destroy whatever it reserved under ``request_id`` (best effort)."""

    @abstractmethod
    def sync_pool(self, peer: str, link_id: str, owner: str, sequence: int, offset: int) -> None:
        """Tell ``peer`` that the owner's half of ``link_id`` is used up to (sequence, offset)."""

    @abstractmethod
    def link_halves(self, peer: str) -> list:
        """The peer's own view of its link halves (a list of LinkHalf)."""

    @abstractmethod
    def exchange(self, peer: str, link_id: str, message: dict) -> dict:
        """Hand ``message`` to ``peer``'s end of ``link_id``'s key source and return its
        answer (kms/link_exchange.py); not retried. Unavailable, naming the peer's
        reason, if it refused or could not be reached."""


@dataclass(frozen=True)
class Delivery:
    """The relay chains of one enc_keys request: a route, the material planned for each
    of its hops, and slaves per destination node."""

    request_id: str
    master_id: str
    key_ids: tuple[str, ...]
    size_bits: int
    ttl_s: int
    routes: Mapping[str, tuple[Hop, ...]]
    slaves: Mapping[str, frozenset[str]]
    plans: Mapping[str, tuple[str, ...]]

    def chain_id(self, destination: str) -> str:
        """The request_id of the chain to ``destination``, so a node on several chains
        of the same request handles each once."""
        return f"{self.request_id}.{destination}"


#: Room in a relay message for everything but its keys (ids, route, SAEs).
RELAY_ENVELOPE_BYTES = 64 * 1024


def relay_body_limit_bytes(limits: LimitsConfig) -> int:
    """The largest relay message a node with ``limits`` accepts: the most keys of the
    largest size, each spanning as many pool blocks of both pools (a hybrid hop) as a
    carve allows (JSON, Base64 pads). A request within the advertised limits always fits."""
    segment_bytes = MAX_BLOCK_ID_CHARS + 48
    pad_bytes = 4 * -(-limits.max_key_size_bits // 8 // 3)
    per_key_bytes = 160 + 2 * MAX_SEGMENTS_PER_KEY * segment_bytes + pad_bytes
    return RELAY_ENVELOPE_BYTES + limits.max_keys_per_request * per_key_bytes


def xor_bytes(a: bytes, b: bytes) -> bytes:
    """One-time pad; both operands must have the same length."""
    if len(a) != len(b):
        raise ValueError("one-time pad and message differ in length")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


#: Provenance of keys that crossed ``route`` with ``plan``: (route, plan) -> Provenance,
#: from this node's view.
ProvenanceOf = Callable[[tuple[Hop, ...], tuple[str, ...]], Provenance]


class Relay:
    """This node's part in trusted-node relay: originate chains, receive and forward hops."""

    def __init__(self, config: NodeConfig, store: KeyStore, pools: PoolStore, transport: PeerTransport,
                 provenance_of: ProvenanceOf):
        self._config = config
        self._store = store
        self._material = HopMaterial(config, pools)
        self._transport = transport
        self._provenance_of = provenance_of

    def send(self, delivery: Delivery) -> list[Key]:
        """Carve each destination's first hop and send its chain; the master's keys.

        The first destination's carved bits are the keys; other destinations receive
        them one-time-pad encrypted under their own first hop's bits. On any failure
        every node reached is told to abort and the error propagates."""
        materials: list[bytes] | None = None
        try:
            for destination, route in delivery.routes.items():
                materials = self._send_chain(delivery, destination, route, materials)
        except Exception:
            self.abort_everywhere(delivery)
            raise
        return [Key(key_id, material, self._master_provenance(delivery))
                for key_id, material in zip(delivery.key_ids, materials)]

    def _send_chain(self, delivery: Delivery, destination: str, route: tuple[Hop, ...],
                    materials: list[bytes] | None) -> list[bytes]:
        plan = delivery.plans[destination]
        parties = KeyParties(delivery.master_id, delivery.slaves[destination])
        pads = self._material.carve(route[0], plan[0], delivery.key_ids, delivery.size_bits // 8, parties)
        if materials is None:
            materials = [p.pad for p in pads]
            hop_keys = [HopKey(p.key_id, p.segments, None, p.pqc_segments) for p in pads]
        else:
            hop_keys = [HopKey(p.key_id, p.segments, xor_bytes(m, p.pad), p.pqc_segments)
                        for p, m in zip(pads, materials)]
        request = RelayRequest(delivery.chain_id(destination), route, 0, delivery.master_id,
                               delivery.slaves[destination], delivery.size_bits, delivery.ttl_s, tuple(hop_keys),
                               plan)
        self._transport.relay(route[0].receiver, request)
        return materials

    def _master_provenance(self, delivery: Delivery) -> Provenance:
        """One route: its provenance. Several (multicast): sources and algorithms of all,
        each route under ``routes`` and every route's hops."""
        each = [self._provenance_of(route, delivery.plans[node]) for node, route in delivery.routes.items()]
        if len(each) == 1:
            return each[0]
        return Provenance(tuple(dict.fromkeys(s for p in each for s in p.sources)),
                          tuple(dict.fromkeys(a for p in each for a in p.algorithms)),
                          routes=tuple(p.route for p in each), hops=tuple(h for p in each for h in p.hops))

    def abort_everywhere(self, delivery: Delivery) -> None:
        """Best effort: every node on every route forgets that route's relay chain."""
        for destination, route in delivery.routes.items():
            for hop in route:
                try:
                    self._transport.abort(hop.receiver, delivery.chain_id(destination))
                except QkmsError:
                    log.warning("abort of %s at %s failed; its reservations expire",
                                delivery.request_id, hop.receiver)

    def receive(self, request: RelayRequest, caller: str) -> None:
        """Handle a relay hop from peer ``caller`` addressed to this node; idempotent per
        request_id. Checked once against this node's configuration before anything
        is touched; a chain that already failed or was aborted is a final Conflict."""
        check_relay(request, caller, self._config)
        state = self._store.begin_request(request.request_id)
        if state == "done":
            return
        if state == "busy":
            raise Unavailable("relay request is still being handled")
        if state != "new":
            raise Conflict(f"relay request is {state}")
        try:
            self._receive(request)
        except BaseException:
            self._store.end_request(request.request_id, succeeded=False)
            raise
        self._store.end_request(request.request_id, succeeded=True)

    def _receive(self, request: RelayRequest) -> None:
        keys = [(k.key_id, k.segments, k.pqc_segments) for k in request.keys]
        pads = self._material.take(request.hop, request.material(request.hop_index), keys, request.parties)
        materials = [xor_bytes(k.ciphertext, pad) if k.ciphertext is not None else pad
                     for k, pad in zip(request.keys, pads)]
        if request.is_last_hop:
            self._reserve(request, materials)
        else:
            self._forward(request, materials)

    def _reserve(self, request: RelayRequest, materials: list[bytes]) -> None:
        provenance = self._provenance_of(request.route, request.plan)
        ttl_s = min(request.ttl_s, self._config.reservation_ttl_s)
        self._store.reserve([Reservation(Key(k.key_id, m, provenance), request.master_id, request.slave_ids)
                             for k, m in zip(request.keys, materials)], ttl_s, request.request_id)

    def _forward(self, request: RelayRequest, materials: list[bytes]) -> None:
        index = request.hop_index + 1
        nxt = request.route[index]
        pads = self._material.carve(nxt, request.material(index), [k.key_id for k in request.keys],
                                    request.size_bits // 8, request.parties)
        keys = tuple(HopKey(p.key_id, p.segments, xor_bytes(m, p.pad), p.pqc_segments)
                     for p, m in zip(pads, materials))
        self._transport.relay(nxt.receiver, replace(request, hop_index=index, keys=keys,
                                                    hop_pools=request.plan))

    def abort(self, request_id: str) -> int:
        """A peer's abort: destroy what this node reserved under ``request_id``."""
        return self._store.abort_request(request_id)


def check_relay(request: RelayRequest, caller: str, config: NodeConfig) -> None:
    """BadRequest unless ``request`` is a hop from ``caller`` to this node that this
    node's own configuration allows: a simple path over configured links, whose first
    node serves the master SAE and last node serves every slave, within this node's
    limits, with UUID key_IDs and keys of the stated size."""
    problem = (_route_problem(request, caller, config) or _parties_problem(request, config)
               or _plan_problem(request, config) or _keys_problem(request, config))
    if problem:
        raise BadRequest(f"relay request refused: {problem}")


def _route_problem(request: RelayRequest, caller: str, config: NodeConfig) -> str | None:
    route = request.route
    if not route or not 0 <= request.hop_index < len(route):
        return "hop_index outside the route"
    if request.hop.sender != caller or request.hop.receiver != config.kme_id:
        return "the hop does not run from the caller to this node"
    links = {link.id: frozenset(link.nodes) for link in config.links}
    for index, hop in enumerate(route):
        if links.get(hop.link_id) != frozenset((hop.sender, hop.receiver)):
            return f"route hop {index} is not a configured link"
        if index and route[index - 1].receiver != hop.sender:
            return "route hops do not join"
    nodes = [route[0].sender, *(hop.receiver for hop in route)]
    if len(set(nodes)) != len(nodes):
        return "route visits a node twice"
    return None


def _parties_problem(request: RelayRequest, config: NodeConfig) -> str | None:
    if config.node_of_sae(request.master_id) != request.route[0].sender:
        return "master_SAE_ID is not an SAE of the route's first node"
    last = request.route[-1].receiver
    if not request.slave_ids or any(config.node_of_sae(s) != last for s in request.slave_ids):
        return "slave_SAE_IDs are not SAEs of the route's last node"
    if len(request.slave_ids) > 1 + config.limits.max_sae_id_count:
        return "more slave SAEs than max_SAE_ID_count allows"
    return None


def _plan_problem(request: RelayRequest, config: NodeConfig) -> str | None:
    if request.hop_pools and len(request.hop_pools) != len(request.route):
        return "hop_pools must name the material of every hop of the route"
    policies = {link.id: link.policy for link in config.links}
    for index, hop in enumerate(request.route):
        material = request.material(index)
        if material not in {m for ms in ALLOWED.values() for m in ms}:
            return f"hop {index}: unknown material {material!r}"
        if not allowed(policies[hop.link_id], material):
            return f"hop {index}: link {hop.link_id} has policy {policies[hop.link_id]}, which does not use {material}"
    hybrid = request.material(request.hop_index) == "hybrid"
    if any(bool(key.pqc_segments) != hybrid for key in request.keys):
        return "pqc_segments are given exactly on a hybrid hop"
    return None


def _keys_problem(request: RelayRequest, config: NodeConfig) -> str | None:
    limits = config.limits
    if not 1 <= len(request.keys) <= limits.max_keys_per_request:
        return f"number of keys must be between 1 and {limits.max_keys_per_request}"
    if request.size_bits % 8 or not limits.min_key_size_bits <= request.size_bits <= limits.max_key_size_bits:
        return "key size outside this node's limits"
    if request.ttl_s <= 0:
        return "ttl_s must be positive"
    size_bytes = request.size_bits // 8
    for key in request.keys:
        if not _is_uuid(key.key_id):
            return "key_IDs must be canonical UUIDs"
        if sum(s.length for s in key.segments) != size_bytes or (
                key.pqc_segments and sum(s.length for s in key.pqc_segments) != size_bytes):
            return "segments do not add up to the key size"
        if key.ciphertext is None and request.hop_index > 0:
            return "hops after the first carry the key one-time-pad encrypted"
        if key.ciphertext is not None and len(key.ciphertext) != size_bytes:
            return "one-time-pad ciphertext is not the key size"
    if len({key.key_id for key in request.keys}) != len(request.keys):
        return "key_IDs repeat"
    return None


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
