"""Keys for SAEs on other nodes: what this node knows of the network, and delivery.

The network view (link board, routing, capacity) lives here; the relay protocol
itself lives in :mod:`kms.relay`.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from kms.catkdf import HYBRID_ALGORITHM
from kms.config import NodeConfig
from kms.errors import BadRequest, ExtensionOptionsNotMet, QkmsError, Unavailable
from kms.keys import HopProvenance, Key, KeyOrder, Provenance
from kms.link_board import LinkBoard, LinkHalf
from kms.policies import POOLS, PoolView, capacity, choose, requirement_names
from kms.pools import PoolStore
from kms.relay import Delivery, PeerTransport, Relay, RelayRequest
from kms.routing import Hop, shortest_route
from kms.store import KeyStore

#: The window of the per-SAE link-material quota (``limits.max_link_bits_per_sae_per_minute``).
LINK_QUOTA_WINDOW_S = 60


class KeyNetwork:
    """This node's part in moving keys across the network."""

    def __init__(self, config: NodeConfig, store: KeyStore, pools: PoolStore, board: LinkBoard,
                 transport: PeerTransport):
        self._config = config
        self._store = store
        self._pools = pools
        self._board = board
        self._link_configs = {link.id: link for link in config.links}
        self._links = [(link.id, *link.nodes) for link in config.links]
        self._relay = Relay(config, store, pools, transport, self.route_provenance)

    @property
    def kme_id(self) -> str:
        return self._config.kme_id

    def pool_view(self, pool: str, owner: str, board: dict) -> PoolView:
        """What ``owner`` can send from ``pool`` (a pool id), as far as this node knows:
        its own pools' bits from the pool store, a peer's as last reported (none if stale
        or down); serving if its source's last report is fresh and not down."""
        half = board.get((pool, owner))
        serving = bool(half and half.fresh() and half.state != "down")
        if owner == self.kme_id:
            return PoolView(self._pools.available_bits(pool, owner), serving)
        return PoolView(half.available_bits if serving else 0, serving)

    def hop_material(self, link_id: str, sender: str, needed_bits: int, board: dict,
                     requires: frozenset[str] = frozenset()) -> tuple[str | None, int]:
        """(material, bits it can carry) for a hop of ``link_id`` from ``sender``, by the
        link's policy; (None, 0) if no material carries ``needed_bits`` meeting ``requires``."""
        link = self._link_configs[link_id]
        if not link.routable:  # paused by an administrator
            return None, 0
        views = {role: self.pool_view(link.pool_id(role), sender, board) for role in link.roles}
        material = choose(link.policy, views, needed_bits, link.fallback_below_bits, requires)
        return material, capacity(material, views) if material else 0

    def available_bits(self, link_id: str, owner: str, board: dict | None = None, needed_bits: int = 1,
                       requires: frozenset[str] = frozenset()) -> int:
        """Material ``owner`` can still send over ``link_id`` for a request of
        ``needed_bits``, as far as this node knows (0 if its policy offers none)."""
        board = self._board.read() if board is None else board
        return self.hop_material(link_id, owner, needed_bits, board, requires)[1]

    def route_to(self, node: str, needed_bits: int, board: dict | None = None,
                 requires: frozenset[str] = frozenset()) -> list[Hop]:
        """The cheapest route to ``node`` able to carry ``needed_bits`` meeting ``requires``;
        Unavailable if none. ``board`` is a link-board snapshot to reuse within one request."""
        board = self._board.read() if board is None else board
        return shortest_route(self.kme_id, node, self._links,
                              lambda link, owner: self.available_bits(link, owner, board, needed_bits, requires),
                              needed_bits)

    def plan(self, route: tuple[Hop, ...], needed_bits: int, board: dict,
             requires: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The material of every hop of ``route`` (one that route_to found able to carry it)."""
        return tuple(self.hop_material(h.link_id, h.sender, needed_bits, board, requires)[0] for h in route)

    def route_capacity(self, node: str, size_bits: int) -> tuple[list[Hop], int]:
        """The route to ``node`` and how many keys of ``size_bits`` it could carry right
        now; ([], 0) without a route."""
        board = self._board.read()
        try:
            route = self.route_to(node, size_bits, board)
        except QkmsError:
            return [], 0
        return route, min(self.available_bits(h.link_id, h.sender, board, size_bits) for h in route) // size_bits

    def route_provenance(self, route: tuple[Hop, ...], plan: tuple[str, ...] = (),
                         board: dict | None = None) -> Provenance:
        """Per hop, the material its plan chose and the sources and algorithms behind it as
        this node's board reports them; all of them, the relay's algorithms, and the nodes
        crossed."""
        board = self._board.read() if board is None else board
        hops = tuple(self._hop_provenance(hop, plan[i] if plan else "qkd", board) for i, hop in enumerate(route))
        sources = tuple(dict.fromkeys(s for hop in hops for s in hop.sources))
        algorithms = tuple(dict.fromkeys(a for hop in hops for a in hop.algorithms))
        relay = ("trusted-node-relay", "one-time-pad") if len(route) > 1 else ()
        return Provenance(sources, algorithms + relay, (route[0].sender, *(h.receiver for h in route)), hops=hops)

    def _hop_provenance(self, hop: Hop, material: str, board: dict) -> HopProvenance:
        link = self._link_configs[hop.link_id]
        halves = [board.get((link.pool_id(role), hop.sender)) for role in POOLS[material]]
        sources = tuple(dict.fromkeys(s for half in halves if half for s in half.sources))
        algorithms = tuple(dict.fromkeys(a for half in halves if half for a in half.algorithms))
        combiner = (HYBRID_ALGORITHM,) if material == "hybrid" else ()
        return HopProvenance(hop.link_id, hop.sender, hop.receiver, material, sources, algorithms + combiner)

    def deliver(self, order: KeyOrder) -> tuple[list[Key], Delivery]:
        """Make the order's keys and have every destination node reserve them for its
        slaves. Every check (routes with enough material of the kinds the order
        requires, the master's link quota) comes before any pool bit is carved; on
        failure nothing stays reserved."""
        board = self._board.read()
        needed_bits = order.number * order.size_bits
        routes = {node: tuple(self._route_meeting(node, needed_bits, board, order.requires))
                  for node in order.slaves_by_node}
        plans = {node: self.plan(route, needed_bits, board, order.requires) for node, route in routes.items()}
        limit = self._config.limits.max_link_bits_per_sae_per_minute
        self._store.charge(f"link-bits:{order.master_id}", needed_bits * len(routes), limit, LINK_QUOTA_WINDOW_S)
        delivery = Delivery(str(uuid.uuid4()), order.master_id, tuple(str(uuid.uuid4()) for _ in range(order.number)),
                            order.size_bits, order.ttl_s, routes, dict(order.slaves_by_node), plans)
        return self._relay.send(delivery), delivery

    def _route_meeting(self, node: str, needed_bits: int, board: dict, requires: frozenset[str]) -> list[Hop]:
        """route_to; when only the requirement is in the way, ExtensionOptionsNotMet (400)."""
        try:
            return self.route_to(node, needed_bits, board, requires)
        except Unavailable:
            if requires and self._reachable(node, needed_bits, board):
                raise ExtensionOptionsNotMet(details=[{"extension_mandatory": requirement_names(requires),
                                                       "target_KME_ID": node}]) from None
            raise

    def _reachable(self, node: str, needed_bits: int, board: dict) -> bool:
        try:
            self.route_to(node, needed_bits, board)
        except Unavailable:
            return False
        return True

    def cancel(self, delivery: Delivery) -> None:
        """Undo a delivery whose local part failed: every node reached forgets it."""
        self._relay.abort_everywhere(delivery)

    def receive(self, request: RelayRequest, caller: str) -> None:
        """A relay hop from peer ``caller`` (see :meth:`kms.relay.Relay.receive`)."""
        self._relay.receive(request, caller)

    def abort(self, request_id: str) -> int:
        """A peer's abort: destroy what this node reserved under ``request_id``."""
        return self._relay.abort(request_id)

    def discard_before(self, link_id: str, owner: str, sequence: int, offset: int) -> int:
        """A peer's pool sync: drop the part of its half it has used or skipped."""
        if not any(link.pool_id(role) == link_id and owner in link.nodes
                   for link in self._config.local_links() for role in link.roles):
            raise BadRequest("pool sync names a link this node is not an end of")
        return self._pools.discard_before(link_id, owner, sequence, offset)

    def known_halves(self) -> list[LinkHalf]:
        """Every link half on this node's board (its own and its peers')."""
        return list(self._board.read().values())

    def local_halves(self) -> list[LinkHalf]:
        """This node's own link halves (one per pool of each link) as it would report them
        to peers."""
        board = self._board.read()
        return [board.get((pool, self.kme_id)) or LinkHalf(pool, self.kme_id, 0, "down", "no data")
                for link in self._config.local_links() for pool in map(link.pool_id, link.roles)]

    def accept_halves(self, halves: list[LinkHalf], sender: str) -> int:
        """Link halves pushed by peer ``sender`` (its own, or other nodes' it passes on):
        keep each that is newer than this node's copy (or as new, from its owner), never
        one of this node's own; confirmed blocks (``held_peer_sequences``) only from the
        half's owner. Returns how many were kept."""
        board = self._board.read()
        kept = []
        for half in halves:
            if half.owner == self.kme_id:
                continue
            from_owner = half.owner == sender
            if not from_owner:
                half = replace(half, held_peer_sequences=())
            known = board.get((half.link_id, half.owner))
            if known is None or half.version > known.version or (
                    from_owner and half.version == known.version):
                kept.append(half)
        self._board.publish(kept)
        return len(kept)
