"""Keys for SAEs on other nodes: what this node knows of the network, and delivery.

The network view (link board, routing, capacity) lives here; the relay protocol
itself lives in :mod:`kms.relay`.
"""

from __future__ import annotations

import uuid

from kms.config import NodeConfig
from kms.errors import BadRequest, QkmsError
from kms.keys import Key, KeyOrder, Provenance
from kms.link_board import LinkBoard, LinkHalf
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
        self._links = [(link.id, *link.nodes) for link in config.links]
        self._relay = Relay(config, store, pools, transport, self.route_provenance)

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
        except QkmsError:
            return [], 0
        return route, min(self.available_bits(h.link_id, h.sender, board) for h in route) // size_bits

    def route_provenance(self, route: tuple[Hop, ...], board: dict | None = None) -> Provenance:
        """Sources and algorithms of every hop's link as this node's board reports them,
        the relay's algorithms, and the nodes crossed."""
        board = self._board.read() if board is None else board
        halves = [board.get((h.link_id, h.sender)) for h in route]
        sources = tuple(dict.fromkeys(s for half in halves if half for s in half.sources))
        algorithms = tuple(dict.fromkeys(a for half in halves if half for a in half.algorithms))
        relay = ("trusted-node-relay", "one-time-pad") if len(route) > 1 else ()
        return Provenance(sources, algorithms + relay, (route[0].sender, *(h.receiver for h in route)))

    def deliver(self, order: KeyOrder) -> tuple[list[Key], Delivery]:
        """Make the order's keys and have every destination node reserve them for its
        slaves. Every check (routes with enough material, the master's link quota)
        comes before any pool bit is carved; on failure nothing stays reserved."""
        board = self._board.read()
        needed_bits = order.number * order.size_bits
        routes = {node: tuple(self.route_to(node, needed_bits, board)) for node in order.slaves_by_node}
        limit = self._config.limits.max_link_bits_per_sae_per_minute
        self._store.charge(f"link-bits:{order.master_id}", needed_bits * len(routes), limit, LINK_QUOTA_WINDOW_S)
        delivery = Delivery(str(uuid.uuid4()), order.master_id, tuple(str(uuid.uuid4()) for _ in range(order.number)),
                            order.size_bits, order.ttl_s, routes, dict(order.slaves_by_node))
        return self._relay.send(delivery), delivery

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
