"""Keys for SAEs on other nodes: routing, carving, relaying, and receiving relays."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace

from kms.config import NodeConfig
from kms.errors import BadRequest, QkmsError, Unavailable
from kms.keys import Key, Provenance, Reservation
from kms.link_board import LinkHalf, RedisLinkBoard
from kms.pools import PoolStore
from kms.relay import HopKey, PeerTransport, RelayRequest, xor_bytes
from kms.routing import Hop, shortest_route
from kms.store import KeyStore

log = logging.getLogger("qkms.network")


class KeyNetwork:
    """This node's part in moving keys across the network."""

    def __init__(self, config: NodeConfig, store: KeyStore, pools: PoolStore, board: RedisLinkBoard,
                 transport: PeerTransport):
        self._config = config
        self._store = store
        self._pools = pools
        self._board = board
        self._transport = transport
        self._links = [(link.id, *link.nodes) for link in config.links]

    @property
    def kme_id(self) -> str:
        return self._config.kme_id

    def available_bits(self, link_id: str, owner: str, board: dict | None = None) -> int:
        """Material ``owner`` can still send over ``link_id``, as far as this node knows."""
        if owner == self.kme_id:
            return self._pools.available_bits(link_id, owner)
        half = (board if board is not None else self._board.read()).get((link_id, owner))
        return half.available_bits if half and half.fresh() and half.state != "down" else 0

    def route_to(self, node: str, needed_bits: int, board: dict | None = None) -> list[Hop]:
        """The cheapest route to ``node`` able to carry ``needed_bits``; Unavailable if none.
        ``board`` is a link-board snapshot to reuse within one request."""
        board = self._board.read() if board is None else board
        return shortest_route(self.kme_id, node, self._links,
                              lambda link, owner: self.available_bits(link, owner, board), needed_bits)

    def route_capacity(self, node: str, size_bits: int) -> tuple[list[Hop], int]:
        """The route to ``node`` and how many keys of ``size_bits`` it could carry right
        now; ([], 0) without a route."""
        board = self._board.read()
        try:
            route = self.route_to(node, size_bits, board)
        except Unavailable:
            return [], 0
        return route, min(self.available_bits(h.link_id, h.sender, board) for h in route) // size_bits

    def originate(self, master_id: str, destinations: dict[str, frozenset[str]], number: int,
                  size_bits: int, ttl_s: int, commit_local: Callable[[list[Key], str], None]) -> list[Key]:
        """Make ``number`` keys and deliver them to every destination node's slaves.

        ``commit_local(keys, request_id)`` then stores this node's own share. If
        anything fails, every node reached is told to abort and the error propagates:
        no half-delivered key stays reserved anywhere."""
        request_id = str(uuid.uuid4())
        board = self._board.read()
        routes = {node: self.route_to(node, number * size_bits, board) for node in destinations}
        key_ids = [str(uuid.uuid4()) for _ in range(number)]
        try:
            keys = self._send_all(request_id, routes, destinations, key_ids, master_id, size_bits, ttl_s, board)
            commit_local(keys, request_id)
        except QkmsError:
            self.abort_everywhere(request_id, routes)
            raise
        return keys

    def _send_all(self, request_id, routes, destinations, key_ids, master_id, size_bits, ttl_s, board) -> list[Key]:
        materials: list[bytes] | None = None
        provenance = None
        for node, route in routes.items():
            first = route[0]
            carved = self._pools.carve(first.link_id, self.kme_id, [size_bits // 8] * len(key_ids))
            if materials is None:
                materials = [c.material for c in carved]
                provenance = self._provenance(route, board)
                hop_keys = [HopKey(k, c.segments) for k, c in zip(key_ids, carved)]
            else:
                hop_keys = [HopKey(k, c.segments, xor_bytes(m, c.material))
                            for k, c, m in zip(key_ids, carved, materials)]
            request = RelayRequest(chain_id(request_id, node), tuple(route), 0, master_id, destinations[node],
                                   size_bits, ttl_s, provenance, tuple(hop_keys))
            self._transport.relay(first.receiver, request)
        return [Key(k, m, provenance) for k, m in zip(key_ids, materials)]

    def _provenance(self, route: list[Hop], board: dict) -> Provenance:
        """Sources and algorithms of every hop's link (as its sender reports them), plus the relay."""
        halves = [board.get((h.link_id, h.sender)) for h in route]
        sources = tuple(dict.fromkeys(s for half in halves if half for s in half.sources))
        algorithms = tuple(dict.fromkeys(a for half in halves if half for a in half.algorithms))
        relay = ("trusted-node-relay", "one-time-pad") if len(route) > 1 else ()
        nodes = (route[0].sender, *(h.receiver for h in route))
        return Provenance(sources, algorithms + relay, nodes)

    def abort_everywhere(self, request_id: str, routes: dict[str, list[Hop]]) -> None:
        """Best effort: every node on every route forgets that route's relay chain."""
        for destination, route in routes.items():
            for hop in route:
                try:
                    self._transport.abort(hop.receiver, chain_id(request_id, destination))
                except QkmsError:
                    log.warning("abort of %s at %s failed; its reservations expire", request_id, hop.receiver)

    def receive(self, request: RelayRequest) -> None:
        """Handle a relay hop addressed to this node (idempotent per request_id)."""
        problem = request.problem()
        if problem:
            raise BadRequest(f"malformed relay request ({problem})")
        state = self._store.begin_request(request.request_id)
        if state == "done":
            return
        if state != "new":
            raise Unavailable(f"relay request is {state}")
        try:
            self._receive(request)
        except BaseException:
            self._store.end_request(request.request_id, succeeded=False)
            raise
        self._store.end_request(request.request_id, succeeded=True)

    def _receive(self, request: RelayRequest) -> None:
        hop = request.hop
        pads = self._pools.take_segments(hop.link_id, hop.sender, [k.segments for k in request.keys])
        materials = [xor_bytes(k.ciphertext, pad) if k.ciphertext is not None else pad
                     for k, pad in zip(request.keys, pads)]
        if request.is_last_hop:
            keys = [Key(k.key_id, m, request.provenance) for k, m in zip(request.keys, materials)]
            self._store.reserve([Reservation(key, request.master_id, request.slave_ids) for key in keys],
                                request.ttl_s, request.request_id)
            return
        self._forward(request, materials)

    def _forward(self, request: RelayRequest, materials: list[bytes]) -> None:
        nxt = request.route[request.hop_index + 1]
        carved = self._pools.carve(nxt.link_id, self.kme_id, [len(m) for m in materials])
        keys = tuple(HopKey(k.key_id, c.segments, xor_bytes(m, c.material))
                     for k, c, m in zip(request.keys, carved, materials))
        self._transport.relay(nxt.receiver, replace(request, hop_index=request.hop_index + 1, keys=keys))

    def abort(self, request_id: str) -> int:
        """A peer's abort: destroy what this node reserved under ``request_id``."""
        return self._store.abort_request(request_id)

    def discard_before(self, link_id: str, owner: str, sequence: int, offset: int) -> int:
        """A peer's pool sync: drop the part of its half it has used or skipped."""
        if not any(link.id == link_id and owner in link.nodes for link in self._config.local_links()):
            raise BadRequest("pool sync names a link this node is not an end of")
        return self._pools.discard_before(link_id, owner, sequence, offset)

    def known_halves(self) -> list[LinkHalf]:
        """Every link half on this node's board (its own and its peers')."""
        return list(self._board.read().values())

    def local_halves(self) -> list[LinkHalf]:
        """This node's own link halves as it would report them to peers."""
        board = self._board.read()
        return [board.get((link.id, self.kme_id)) or LinkHalf(link.id, self.kme_id, 0, "down", "no data")
                for link in self._config.local_links()]


def chain_id(request_id: str, destination: str) -> str:
    """The request_id of one relay chain of a request (one per destination node), so a
    node on several chains of the same request handles each once."""
    return f"{request_id}.{destination}"
