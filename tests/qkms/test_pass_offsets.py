"""Pass offsets that ``qkms init`` gives satellite links sharing a node."""

from __future__ import annotations

from adapters.quantum_internet.pass_schedule import PassSchedule, first_conflict
from qkms.layout import LinkPlan
from qkms.pass_offsets import stagger_satellite_passes

SATELLITE = {"kind": "satellite", "pass_interval_s": 600.0, "pass_duration_s": 60.0}


def plan(link_id: str, source: dict = SATELLITE) -> LinkPlan:
    return LinkPlan(link_id, tuple(link_id.split("-")), dict(source))


def schedules_at(node: str, links: list[LinkPlan]) -> list[PassSchedule]:
    return [PassSchedule(600.0, 60.0, link.source.get("pass_offset_s", 0.0)) for link in links
            if node in link.nodes and link.source["kind"] == "satellite"]


def test_every_node_of_a_satellite_network_gets_non_overlapping_passes():
    links = stagger_satellite_passes([plan("G1-S1"), plan("S1-G2"), plan("G2-S2"), plan("S2-G3"), plan("S1-S2"),
                                      plan("G3-X", {"kind": "simulated"})])
    assert links[-1].source == {"kind": "simulated"}
    for node in ("G1", "S1", "G2", "S2", "G3"):
        assert first_conflict(schedules_at(node, links)) is None, node


def test_an_offset_the_section_sets_is_kept():
    links = stagger_satellite_passes([plan("G1-S"), plan("S-G2", {**SATELLITE, "pass_offset_s": 450.0})])
    assert [link.source["pass_offset_s"] for link in links] == [0.0, 450.0]
