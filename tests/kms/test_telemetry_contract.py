"""The TelemetryStore contract (kms/telemetry.py) on every backend: the in-memory twin
and RedisTelemetryStore on both kinds of Redis."""

from __future__ import annotations

import pytest

from kms.storage import open_telemetry
from kms.storage.memory_telemetry import MemoryTelemetryStore
from kms.telemetry import ALARMS_KEPT, SAMPLES_KEPT, Alarm, LinkSample, TelemetryStore
from tests.support.backends import Backend, MemoryBackend


def open_store(backend: Backend, kme_id: str) -> TelemetryStore:
    if isinstance(backend, MemoryBackend):
        return MemoryTelemetryStore(backend.database, kme_id)
    return open_telemetry(backend.settings, kme_id)


@pytest.fixture
def telemetry(backend: Backend) -> TelemetryStore:
    return open_store(backend, "KME-A")


def sample(at: float, owner: str = "A", qber: float | None = 0.02) -> LinkSample:
    return LinkSample("A-B", owner, at, "up", qber, 100.0, 4096)


ALARM = Alarm(12.0, "A-B", "A", "critical", "qber", "QBER rose from 2.0% to 25.0%: possible eavesdropper")


def test_a_new_store_is_empty(telemetry: TelemetryStore) -> None:
    assert telemetry.samples() == {} and telemetry.alarms() == [] and telemetry.rate_curve("A-B") is None


def test_samples_come_back_per_half_oldest_first_and_after_since(telemetry: TelemetryStore) -> None:
    telemetry.record([sample(1.0), sample(2.0, "B", None)], [])
    telemetry.record([sample(3.0)], [ALARM])
    assert telemetry.samples() == {("A-B", "A"): [sample(1.0), sample(3.0)], ("A-B", "B"): [sample(2.0, "B", None)]}
    assert telemetry.samples(since=1.0) == {("A-B", "A"): [sample(3.0)], ("A-B", "B"): [sample(2.0, "B", None)]}
    assert telemetry.alarms() == [ALARM] and telemetry.alarms(since=12.0) == []


def test_only_the_newest_samples_and_alarms_are_kept(telemetry: TelemetryStore) -> None:
    telemetry.record([sample(float(i)) for i in range(SAMPLES_KEPT + 5)],
                     [Alarm(float(i), "A-B", "A", "warning", "state", "x") for i in range(ALARMS_KEPT + 3)])
    kept = telemetry.samples()[("A-B", "A")]
    assert [s.at for s in kept] == [float(i) for i in range(5, SAMPLES_KEPT + 5)]
    assert [a.at for a in telemetry.alarms()] == [float(i) for i in range(3, ALARMS_KEPT + 3)]


def test_a_rate_curve_is_replaced_by_the_next(telemetry: TelemetryStore) -> None:
    telemetry.put_rate_curve("A-B", {"lengths_km": [0.0, 10.0], "plob_bits_per_pulse": [1.0, 0.5]})
    telemetry.put_rate_curve("A-B", {"lengths_km": [0.0]})
    assert telemetry.rate_curve("A-B") == {"lengths_km": [0.0]}
    assert telemetry.rate_curve("B-C") is None


def test_each_node_has_its_own_telemetry(backend: Backend, telemetry: TelemetryStore) -> None:
    telemetry.record([sample(1.0)], [ALARM])
    other = open_store(backend, "KME-B")
    assert other.samples() == {} and other.alarms() == []
