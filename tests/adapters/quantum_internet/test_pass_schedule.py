"""Pass schedules of satellite downlinks: offsets, and the non-overlap that a satellite
relaying between two ground stations needs (it sees one station at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.quantum_internet.pass_schedule import PassSchedule, first_conflict, staggered_offsets_s
from adapters.quantum_internet.satellite import SatelliteParams

INTERVAL_S = 100.0
#: A moment far from the Unix epoch, at the start of a period.
EPOCH_S = 1e9 * INTERVAL_S


def schedule(offset_s: float, pass_s: float = 10.0, interval_s: float = INTERVAL_S) -> PassSchedule:
    return PassSchedule(interval_s, pass_s, offset_s)


def in_pass(params: PassSchedule, times_s: np.ndarray) -> np.ndarray:
    return np.array([params.fraction_at(t) is not None for t in times_s])


def test_a_pass_starts_at_the_offset_and_lasts_its_duration():
    params = schedule(30.0)
    assert params.fraction_at(EPOCH_S + 30.0) == 0.0
    assert params.fraction_at(EPOCH_S + 35.0) == pytest.approx(0.5)
    assert params.fraction_at(EPOCH_S + 29.5) is None and params.fraction_at(EPOCH_S + 40.0) is None
    assert params.seconds_to_next(EPOCH_S + 40.0) == pytest.approx(90.0)
    assert params.seconds_to_next(EPOCH_S + 31.0) == 0.0
    assert params.seconds_since_end(EPOCH_S + 45.0) == pytest.approx(5.0)
    assert params.seconds_since_end(EPOCH_S + 31.0) is None


@pytest.mark.parametrize("offsets_s, overlap", [
    ((0.0, 50.0), False), ((0.0, 10.0), False), ((0.0, 90.0), False), ((90.0, 0.0), False),
    ((0.0, 9.0), True), ((0.0, 95.0), True), ((95.0, 0.0), True), ((20.0, 20.0), True),
])
def test_overlap_agrees_with_sampling_the_schedules(offsets_s, overlap):
    a, b = (schedule(offset) for offset in offsets_s)
    times_s = EPOCH_S + np.arange(0.0, 3 * INTERVAL_S, 0.25)
    assert a.overlaps(b) == b.overlaps(a) == overlap
    assert bool((in_pass(a, times_s) & in_pass(b, times_s)).any()) == overlap


@pytest.mark.parametrize("count", [2, 3, 5])
def test_staggered_offsets_never_overlap_while_passes_fit(count):
    offsets = staggered_offsets_s(INTERVAL_S, count)
    assert offsets[0] == 0.0 and all(0.0 <= o < INTERVAL_S for o in offsets)
    assert first_conflict([schedule(offset, pass_s=INTERVAL_S / count) for offset in offsets]) is None
    longer = [schedule(offset, pass_s=INTERVAL_S / count + 1.0) for offset in offsets]
    assert first_conflict(longer)[0] == 1


def test_a_conflict_names_the_later_downlink_and_its_setting():
    index, why = first_conflict([schedule(0.0), schedule(50.0), schedule(55.0)])
    assert index == 2 and why.startswith("pass_offset_s: ") and "#2" in why
    index, why = first_conflict([schedule(0.0), schedule(50.0, interval_s=200.0)])
    assert index == 1 and why.startswith("pass_interval_s: ")


@pytest.mark.parametrize("changes, setting", [
    ({"pass_offset_s": 100.0}, "pass_offset_s"), ({"pass_offset_s": -1.0}, "pass_offset_s"),
    ({"pass_duration_s": 101.0}, "pass_duration_s"),
])
def test_a_satellite_schedule_that_cannot_repeat_is_refused(changes, setting):
    params = SatelliteParams(pass_interval_s=INTERVAL_S, pass_duration_s=10.0)
    with pytest.raises(ValueError, match=rf"^{setting}: "):
        params.replace(**changes)


def test_the_geometric_pass_must_fit_its_interval():
    assert SatelliteParams().schedule.pass_s == pytest.approx(SatelliteParams().geometric_pass_s)
    with pytest.raises(ValueError, match=r"^pass_duration_s: "):
        SatelliteParams(pass_interval_s=60.0)
