"""Routes across the network (kms/routing.py): cheapest paths weighted by the key
material each link half can still send (DESIGN.md section 2)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from kms.errors import Unavailable
from kms.routing import Hop, hop_cost, shortest_route

FULL = 10**9
NEEDED = 256


def halves(table: dict[tuple[str, str], int]):
    """available_bits(link, sender) from a table; halves not listed hold nothing."""
    return lambda link_id, sender: table.get((link_id, sender), 0)


def route_cost(route: list[Hop], table: dict[tuple[str, str], int]) -> float:
    return sum(hop_cost(table[(hop.link_id, hop.sender)]) for hop in route)


TRIANGLE = [("A-B", "A", "B"), ("A-C", "A", "C"), ("C-B", "C", "B")]


def test_an_adjacent_node_is_one_hop() -> None:
    table = {("A-B", "A"): FULL}
    assert shortest_route("A", "B", [("A-B", "A", "B")], halves(table), NEEDED) == [Hop("A-B", "A", "B")]


def test_a_full_direct_link_beats_a_detour() -> None:
    table = {("A-B", "A"): FULL, ("A-C", "A"): FULL, ("C-B", "C"): FULL}
    assert shortest_route("A", "B", TRIANGLE, halves(table), NEEDED) == [Hop("A-B", "A", "B")]


def test_a_nearly_empty_direct_link_loses_to_a_full_detour() -> None:
    table = {("A-B", "A"): 10_000, ("A-C", "A"): FULL, ("C-B", "C"): FULL}
    assert shortest_route("A", "B", TRIANGLE, halves(table), NEEDED) == [Hop("A-C", "A", "C"),
                                                                         Hop("C-B", "C", "B")]


@pytest.mark.parametrize("fuller", ["B", "C"])
def test_of_two_equally_long_routes_the_fuller_one_wins(fuller: str) -> None:
    links = [("A-B", "A", "B"), ("B-D", "B", "D"), ("A-C", "A", "C"), ("C-D", "C", "D")]
    table = {("A-B", "A"): 5_000_000, ("B-D", "B"): 5_000_000, ("A-C", "A"): 5_000_000, ("C-D", "C"): 5_000_000}
    table[(f"{fuller}-D", fuller)] = 50_000_000
    route = shortest_route("A", "D", links, halves(table), NEEDED)
    assert [hop.receiver for hop in route] == [fuller, "D"]


def test_a_half_without_the_needed_bits_is_not_used() -> None:
    table = {("A-B", "A"): NEEDED - 8, ("A-C", "A"): NEEDED, ("C-B", "C"): NEEDED}
    route = shortest_route("A", "B", TRIANGLE, halves(table), NEEDED)
    assert route == [Hop("A-C", "A", "C"), Hop("C-B", "C", "B")]
    assert all(table[(hop.link_id, hop.sender)] >= NEEDED for hop in route)


def test_direction_matters() -> None:
    links = [("A-B", "A", "B")]
    table = {("A-B", "A"): FULL, ("A-B", "B"): 0}
    assert shortest_route("A", "B", links, halves(table), NEEDED) == [Hop("A-B", "A", "B")]
    with pytest.raises(Unavailable):
        shortest_route("B", "A", links, halves(table), NEEDED)


def test_a_link_listed_from_the_other_end_is_used_in_the_right_direction() -> None:
    links = [("A-B", "B", "A")]
    table = {("A-B", "B"): FULL}
    assert shortest_route("B", "A", links, halves(table), NEEDED) == [Hop("A-B", "B", "A")]
    with pytest.raises(Unavailable):
        shortest_route("A", "B", links, halves(table), NEEDED)


def test_only_the_senders_half_is_asked() -> None:
    asked: list[tuple[str, str]] = []

    def available(link_id: str, sender: str) -> int:
        asked.append((link_id, sender))
        return FULL if sender == "A" else 0

    shortest_route("A", "B", [("A-B", "A", "B")], available, NEEDED)
    assert set(asked) == {("A-B", "A"), ("A-B", "B")}


@pytest.mark.parametrize("table, target", [
    ({("A-B", "A"): FULL}, "C"),
    ({("A-B", "A"): FULL, ("A-C", "A"): FULL}, "Z"),
    ({("A-B", "A"): NEEDED - 1, ("A-C", "A"): FULL, ("C-B", "C"): NEEDED - 1}, "B"),
    ({}, "B"),
], ids=["disconnected", "unknown node", "every route short", "empty"])
def test_no_route_is_unavailable(table: dict, target: str) -> None:
    with pytest.raises(Unavailable) as caught:
        shortest_route("A", target, TRIANGLE, halves(table), NEEDED)
    assert target in caught.value.message


def test_a_multi_hop_route_unwinds_from_source_to_target() -> None:
    links = [("C-D", "D", "C"), ("A-B", "A", "B"), ("D-E", "D", "E"), ("B-C", "C", "B")]
    table = {("A-B", "A"): FULL, ("B-C", "B"): FULL, ("C-D", "C"): FULL, ("D-E", "D"): FULL}
    route = shortest_route("A", "E", links, halves(table), NEEDED)
    assert route == [Hop("A-B", "A", "B"), Hop("B-C", "B", "C"), Hop("C-D", "C", "D"), Hop("D-E", "D", "E")]
    assert all(a.receiver == b.sender for a, b in itertools.pairwise(route))


def test_the_cheaper_route_wins_even_with_more_hops() -> None:
    links = [("A-Z", "A", "Z"), ("A-B", "A", "B"), ("B-C", "B", "C"), ("C-Z", "C", "Z")]
    table = {("A-Z", "A"): 2_000, ("A-B", "A"): FULL, ("B-C", "B"): FULL, ("C-Z", "C"): FULL}
    route = shortest_route("A", "Z", links, halves(table), NEEDED)
    assert [hop.link_id for hop in route] == ["A-B", "B-C", "C-Z"]


def test_hop_cost_falls_as_material_grows() -> None:
    levels = [0, 1, 8, 256, 10_000, 10**6, 10**9, 10**15]
    costs = [hop_cost(bits) for bits in levels]
    assert all(a > b for a, b in itertools.pairwise(costs))
    assert all(cost > 1.0 for cost in costs)
    assert costs[-1] == pytest.approx(1.0, abs=1e-6)
    assert all(math.isfinite(cost) for cost in costs)


def _all_routes(source: str, target: str, links, table) -> list[list[Hop]]:
    """Every simple path whose halves can all send the needed bits (brute force)."""
    out, nodes = [], sorted({n for _, a, b in links for n in (a, b)} - {source, target})
    hops = {}
    for link_id, a, b in links:
        for sender, receiver in ((a, b), (b, a)):
            if table.get((link_id, sender), 0) >= NEEDED:
                hops.setdefault((sender, receiver), []).append(Hop(link_id, sender, receiver))
    for length in range(len(nodes) + 1):
        for middle in itertools.permutations(nodes, length):
            path = [source, *middle, target]
            options = [hops.get(pair, []) for pair in itertools.pairwise(path)]
            out += [list(choice) for choice in itertools.product(*options)]
    return out


@pytest.mark.parametrize("seed", range(25))
def test_the_route_is_the_cheapest_of_all_routes(seed: int) -> None:
    rng = random.Random(seed)
    nodes = [f"N{i}" for i in range(6)]
    links = [(f"L{i}", *rng.sample(nodes, 2)) for i in range(rng.randint(5, 10))]
    table = {(link_id, sender): rng.choice([0, NEEDED - 1, NEEDED, 10**4, 10**6, 10**8])
             for link_id, a, b in links for sender in (a, b)}
    candidates = _all_routes("N0", "N5", links, table)
    if not candidates:
        with pytest.raises(Unavailable):
            shortest_route("N0", "N5", links, halves(table), NEEDED)
        return
    route = shortest_route("N0", "N5", links, halves(table), NEEDED)
    assert route in candidates
    assert route_cost(route, table) == pytest.approx(min(route_cost(r, table) for r in candidates))
