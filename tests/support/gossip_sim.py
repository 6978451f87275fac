"""Link-state gossip on a simulated network, round by round, without processes.

Every node runs :class:`kms.link_gossip.Gossip` as the link manager does (publish its
own halves, push each neighbour its outbox every ``round_s``), the pushes delivered
at once; a node keeps a received half when it is newer than its copy, as
``KeyNetwork.accept_halves`` does. Counts what a real network would send.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kms.link_board import LinkHalf
from kms.link_gossip import Gossip


@dataclass
class SimNode:
    kme_id: str
    links: dict[str, str]  # link id -> the other end
    gossip: Gossip
    board: dict[tuple[str, str], LinkHalf] = field(default_factory=dict)


@dataclass
class Traffic:
    messages: int = 0
    halves: int = 0
    max_halves_received_by_a_node: int = 0


class GossipNetwork:
    """Nodes joined by ``links`` (pairs of node names), each link with one half per end."""

    def __init__(self, links: list[tuple[str, str]], round_s: float = 0.5):
        self.now = 0.0
        self.round_s = round_s
        self.nodes: dict[str, SimNode] = {}
        for a, b in links:
            for end, other in ((a, b), (b, a)):
                node = self.nodes.setdefault(end, SimNode(end, {}, Gossip(end, clock=lambda: self.now)))
                node.links[f"{a}-{b}"] = other
        self.states: dict[tuple[str, str], str] = {}

    def own_halves(self, node: SimNode) -> list[LinkHalf]:
        return [LinkHalf(link_id, node.kme_id, 10**6, self.states.get((link_id, node.kme_id), "up"),
                         observed_at=self.now) for link_id in node.links]

    def round(self) -> Traffic:
        """One gossip round: every node publishes and pushes to each neighbour."""
        traffic, received, pushes = Traffic(), {name: 0 for name in self.nodes}, []
        for node in self.nodes.values():
            own = self.own_halves(node)
            node.board.update({(h.link_id, h.owner): h for h in own})
            node.gossip.advertise(own)
            for neighbour in sorted(set(node.links.values())):
                halves = node.gossip.outbox(neighbour, node.board, node.links.get)
                if halves or node.gossip.refresh_due(neighbour):
                    node.gossip.delivered(neighbour, halves)
                    pushes.append((neighbour, halves))
        for neighbour, halves in pushes:  # all arrive after the round: a hop per round
            self._accept(self.nodes[neighbour], halves)
            traffic.messages += 1
            traffic.halves += len(halves)
            received[neighbour] += len(halves)
        traffic.max_halves_received_by_a_node = max(received.values())
        self.now += self.round_s
        return traffic

    @staticmethod
    def _accept(node: SimNode, halves: list[LinkHalf]) -> None:
        for half in halves:
            known = node.board.get((half.link_id, half.owner))
            if half.owner != node.kme_id and (known is None or half.observed_at > known.observed_at):
                node.board[half.link_id, half.owner] = replace(half)

    def rounds_until_known_everywhere(self, link_id: str, owner: str, state: str, limit: int = 1000) -> int:
        """Set a half's state, then count the rounds until every node holds it."""
        self.states[link_id, owner] = state
        for rounds in range(1, limit + 1):
            self.round()
            if all(n.board.get((link_id, owner)) is not None and n.board[link_id, owner].state == state
                   for n in self.nodes.values()):
                return rounds
        raise AssertionError(f"{link_id} ({owner}) not known everywhere after {limit} rounds")


def grid(side: int) -> list[tuple[str, str]]:
    """The links of a side x side grid of nodes named r<row>c<col>."""
    name = "r{}c{}".format
    return [(name(r, c), name(r, c + 1)) for r in range(side) for c in range(side - 1)] + \
        [(name(r, c), name(r + 1, c)) for r in range(side - 1) for c in range(side)]
