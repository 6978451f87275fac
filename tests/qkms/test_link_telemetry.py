"""The link manager's recording (qkms.link_telemetry) and the rate-versus-distance
curve it stores for each simulated link (qkms.rate_curve)."""

from __future__ import annotations

import pytest

from kms.errors import StoreError
from kms.link_board import LinkHalf
from kms.config import LinkConfig
from kms.storage.memory_board import MemoryLinkBoard
from kms.storage.memory_db import MemoryDatabase
from kms.storage.memory_telemetry import MemoryTelemetryStore
from qkms.link_telemetry import LinkRecorder, ObservedBoard
from qkms.rate_curve import publish_rate_curves, rate_curve

UP = LinkHalf("A-B", "A", 4096, "up", "frame 1", {"qber": 0.01}, 1.0)
EVE = LinkHalf("A-B", "A", 4096, "degraded", "QBER 25%: possible eavesdropper", {"qber": 0.25}, 2.0)
BACK = LinkHalf("A-B", "A", 4096, "up", "frame 3", {"qber": 0.01}, 3.0)


@pytest.fixture
def telemetry() -> MemoryTelemetryStore:
    return MemoryTelemetryStore(MemoryDatabase(), "A")


def test_published_halves_are_recorded_once_each_with_their_alarms(telemetry) -> None:
    database = MemoryDatabase()
    board = ObservedBoard(MemoryLinkBoard(database, "A"), LinkRecorder(telemetry, lambda: True))
    for halves in ([UP], [UP], [EVE], [BACK]):  # a peer's half polled twice unchanged counts once
        board.publish(halves)
    assert [s.at for s in telemetry.samples()[("A-B", "A")]] == [1.0, 2.0, 3.0]
    assert [(a.kind, a.severity) for a in telemetry.alarms()] == \
        [("qber", "critical"), ("state", "warning"), ("state", "cleared")]
    assert board.read() == {("A-B", "A"): BACK}


def test_a_failing_telemetry_store_never_stops_the_link_manager(telemetry) -> None:
    class Broken(MemoryTelemetryStore):
        def record(self, samples, alarms):
            raise StoreError()

    recorder = LinkRecorder(Broken(MemoryDatabase(), "A"), lambda: True)
    recorder.observe([UP])
    assert [a.kind for a in recorder.observe([EVE])] == ["qber", "state"]


def test_the_rate_curve_of_a_simulated_link_stays_under_plob() -> None:
    curve = rate_curve({"kind": "simulated", "preset": "gys", "length_km": 25})
    pairs = list(zip(curve["decoy_bits_per_pulse"], curve["plob_bits_per_pulse"]))
    assert len(pairs) == len(curve["lengths_km"]) and curve["length_km"] == 25
    assert all(0 <= decoy < plob for decoy, plob in pairs)
    # GYS: infinite decoys reach a little over 140 km (DESIGN.md, section 4); the practical
    # vacuum + weak decoy protocol drawn here (Ma et al. 2005) a little less.
    assert 130 < curve["decoy_max_km"] < 145
    assert rate_curve({"kind": "ml-kem"}) is None


def test_curves_are_stored_for_simulated_links_only(telemetry) -> None:
    links = [LinkConfig(id="A-B", nodes=("A", "B"), source={"kind": "simulated", "length_km": 10}),
             LinkConfig(id="A-C", nodes=("A", "C"), source={"kind": "vendor-x"})]
    assert publish_rate_curves(links, telemetry) == 1
    assert telemetry.rate_curve("A-B")["length_km"] == 10 and telemetry.rate_curve("A-C") is None
