"""Pass offsets of the satellite links ``qkms init`` writes.

A node on two or more satellite links has one optical terminal (a satellite relaying
between ground stations, as Micius between Xinglong and Graz): its links' passes must
come at different times of one orbit, or ``qkms serve`` refuses the config.  Init colours
the satellite links so that no two at one node share a colour, and spreads the colours
evenly over the period: two downlinks of one satellite get offsets 0 and half a period.
"""

from __future__ import annotations

from dataclasses import replace

from adapters.quantum_internet.pass_schedule import DEFAULT_PASS_INTERVAL_S, staggered_offsets_s
from qkms.layout import LinkPlan


def _colours(links: list[LinkPlan]) -> list[int]:
    """Greedy colouring: each link the smallest colour no earlier link at its nodes has."""
    colours: list[int] = []
    for index, link in enumerate(links):
        taken = {colours[i] for i, other in enumerate(links[:index]) if set(other.nodes) & set(link.nodes)}
        colours.append(next(c for c in range(len(links)) if c not in taken))
    return colours


def stagger_satellite_passes(links: list[LinkPlan]) -> list[LinkPlan]:
    """``links`` with ``pass_offset_s`` set on every satellite link that shares a node
    with another one (a section that sets it already is kept as it is)."""
    satellites = [link for link in links if link.source.get("kind") == "satellite"]
    colours = dict(zip((link.link_id for link in satellites), _colours(satellites)))
    count = max(colours.values(), default=0) + 1
    if count == 1:
        return links
    return [_with_offset(link, colours[link.link_id], count) if link.link_id in colours else link for link in links]


def _with_offset(link: LinkPlan, colour: int, count: int) -> LinkPlan:
    interval_s = link.source.get("pass_interval_s", DEFAULT_PASS_INTERVAL_S)
    offset_s = link.source.get("pass_offset_s", staggered_offsets_s(interval_s, count)[colour])
    return replace(link, source={**link.source, "pass_offset_s": offset_s})
