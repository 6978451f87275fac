"""Routes across the network: shortest paths weighted by available key material."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kms.errors import Unavailable


@dataclass(frozen=True)
class Hop:
    """One step of a route: over ``link_id`` from ``sender`` to ``receiver``."""

    link_id: str
    sender: str
    receiver: str


# A hop's cost grows as its key material runs low, so routes drift to fuller links.
SCARCITY_WEIGHT_BITS = 1_000_000


def hop_cost(available_bits: int) -> float:
    """1 per hop plus a penalty inversely proportional to the material left."""
    return 1.0 + SCARCITY_WEIGHT_BITS / (1.0 + available_bits)


def shortest_route(source: str, target: str, links: Sequence[tuple[str, str, str]],
                   available_bits: Callable[[str, str], int], needed_bits: int) -> list[Hop]:
    """Cheapest route from ``source`` to ``target`` over links with at least
    ``needed_bits`` available in the sending direction; Unavailable if none."""
    graph: dict[str, list[Hop]] = {}
    for link_id, a, b in links:
        for sender, receiver in ((a, b), (b, a)):
            if available_bits(link_id, sender) >= needed_bits:
                graph.setdefault(sender, []).append(Hop(link_id, sender, receiver))
    best: dict[str, float] = {source: 0.0}
    previous: dict[str, Hop] = {}
    frontier = [(0.0, source)]
    while frontier:
        cost, node = heapq.heappop(frontier)
        if node == target:
            return _unwind(previous, source, target)
        if cost > best.get(node, float("inf")):
            continue
        for hop in graph.get(node, ()):
            candidate = cost + hop_cost(available_bits(hop.link_id, hop.sender))
            if candidate < best.get(hop.receiver, float("inf")):
                best[hop.receiver], previous[hop.receiver] = candidate, hop
                heapq.heappush(frontier, (candidate, hop.receiver))
    raise Unavailable(f"no route from {source} to {target} with enough key material")


def _unwind(previous: dict[str, Hop], source: str, target: str) -> list[Hop]:
    route, node = [], target
    while node != source:
        hop = previous[node]
        route.append(hop)
        node = hop.sender
    return route[::-1]
