"""A satellite as a trusted node between two ground stations it never sees at once (as
Micius between Xinglong and Graz, Liao et al., PRL 120, 030501 (2018)): three real node
processes, downlinks G1-SAT and SAT-G2 with passes of one 12 s orbit at offsets 0 and 6 s.
A key goes from G1 to G2 relayed by SAT; the links' own output (the frame index of every
pooled block is the clock slot that made it) and their health reports (frame, in_pass)
show the downlinks never made key in the same slot and that each link's key waited in the
pools across the other's pass.
Conditions are waited for, never fixed sleeps; nothing asserts on timing or counts of
random size.
"""

from __future__ import annotations

import pytest

from adapters.quantum_internet.pass_schedule import PassSchedule, staggered_offsets_s
from qkms.link_status import fetch_link_state
from tests.support.conditions import wait_until
from tests.support.network import FAST_LINK, LocalNetwork

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL_S, PASS_S, FRAME_S = 12.0, 4.0, 1.0
OFFSETS_S = dict(zip(["G1-SAT", "SAT-G2"], staggered_offsets_s(INTERVAL_S, 2)))
SCHEDULES = {link: PassSchedule(INTERVAL_S, PASS_S, offset) for link, offset in OFFSETS_S.items()}
SAES = {"G1": ("sae-g1",), "SAT": (), "G2": ("sae-g2",)}
SOURCES = {tuple(link.split("-")): {"kind": "satellite", "frame_interval_s": FRAME_S, "pass_interval_s": INTERVAL_S,
                                    "pass_duration_s": PASS_S, "pass_offset_s": offset}
           for link, offset in OFFSETS_S.items()}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("sat"), SAES, list(SOURCES), FAST_LINK, sources=SOURCES)
    network.start()
    yield network
    network.close()


def pooled_slots(net: LocalNetwork, link_id: str) -> set[int]:
    """Frame indices (clock slots) of the blocks SAT holds of a link, both halves."""
    pools = net.pools("SAT")
    return {seq for owner in link_id.split("-") for seq in pools.block_digests(link_id, owner)}


def record_reports(net: LocalNetwork, reports: dict[str, dict[int, float]]) -> None:
    """Add what SAT's link ends report now: per link, frame index -> in_pass (0 or 1)."""
    for half in fetch_link_state(net.manifest, "SAT").halves:
        if half.owner == "SAT" and half.link_id in reports and "frame" in half.metrics:
            reports[half.link_id][int(half.metrics["frame"])] = half.metrics["in_pass"]


def held_across_each_others_pass(net: LocalNetwork, reports) -> tuple[set[int], set[int]] | None:
    """Both links' slots, once each link has reported a frame in a pass and its pools hold
    key made before a slot of the other: key that waited through the other's pass."""
    record_reports(net, reports)
    if not all(any(frames.values()) for frames in reports.values()):
        return None  # each link is yet to report a frame in a pass
    up, down = pooled_slots(net, "G1-SAT"), pooled_slots(net, "SAT-G2")
    if up and down and min(up) < max(down) and min(down) < max(up):
        return up, down
    return None


def test_a_key_from_g1_reaches_g2_through_the_satellite(net):
    net.wait_for_keys(net.client("sae-g1"), "sae-g2", 4, timeout_s=180)
    keys = net.client("sae-g1").enc_keys("sae-g2", number=2, size_bits=256)
    provenance = keys[0].extension["qkms_provenance"]
    assert provenance["route"] == ["G1", "SAT", "G2"] and set(provenance["sources"]) == {"satellite"}
    fetched = net.client("sae-g2").dec_keys("sae-g1", [k.key_id for k in keys])
    assert [k.key_id for k in fetched] == [k.key_id for k in keys]
    assert all(a.material == b.material for a, b in zip(keys, fetched))


def test_the_downlinks_never_make_key_at_once_and_pools_buffer_across_passes(net):
    reports: dict[str, dict[int, float]] = {link: {} for link in SCHEDULES}
    up, down = wait_until(lambda: held_across_each_others_pass(net, reports),
                          "passes reported by both links, each link's key held across the other's pass", 180,
                          poll_s=0.5)
    assert not up & down, "both downlinks made key in the same slot"
    in_pass = {link: {frame for frame, flag in frames.items() if flag} for link, frames in reports.items()}
    assert not in_pass["G1-SAT"] & in_pass["SAT-G2"], "both links reported the same frame in a pass"
    assert all(SCHEDULES["G1-SAT"].fraction_at(slot * FRAME_S) is not None for slot in up)
    assert all(SCHEDULES["SAT-G2"].fraction_at(slot * FRAME_S) is not None for slot in down)
