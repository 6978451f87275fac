"""Pass schedules of satellite downlinks: offsets, and the non-overlap that a satellite
relaying between two ground stations needs (it sees one station at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.quantum_internet.satellite import (SatelliteParams, first_conflict, pass_fraction, passes_overlap,
                                                  seconds_to_next_pass, staggered_offsets_s)

INTERVAL_S = 100.0


def schedule(offset_s: float, duration_s: float = 10.0, interval_s: float = INTERVAL_S) -> SatelliteParams:
    return SatelliteParams(pass_interval_s=interval_s, pass_duration_s=duration_s, pass_offset_s=offset_s)


def in_pass(params: SatelliteParams, times_s: np.ndarray) -> np.ndarray:
    return np.array([pass_fraction(params, t) is not None for t in times_s])


def test_a_pass_starts_at_the_offset_and_lasts_its_duration():
    params = schedule(30.0)
    assert pass_fraction(params, 1e9 * INTERVAL_S + 30.0) == 0.0
    assert pass_fraction(params, 1e9 * INTERVAL_S + 35.0) == pytest.approx(0.5)
    assert pass_fraction(params, 1e9 * INTERVAL_S + 29.5) is None
    assert pass_fraction(params, 1e9 * INTERVAL_S + 40.0) is None
    assert seconds_to_next_pass(params, 1e9 * INTERVAL_S + 40.0) == pytest.approx(90.0)


@pytest.mark.parametrize("offsets_s, overlap", [
    ((0.0, 50.0), False), ((0.0, 10.0), False), ((0.0, 90.0), False), ((90.0, 0.0), False),
    ((0.0, 9.0), True), ((0.0, 95.0), True), ((95.0, 0.0), True), ((20.0, 20.0), True),
])
def test_overlap_agrees_with_sampling_the_schedules(offsets_s, overlap):
    a, b = (schedule(offset) for offset in offsets_s)
    times_s = 1e9 * INTERVAL_S + np.arange(0.0, 3 * INTERVAL_S, 0.25)
    assert passes_overlap(a, b) == passes_overlap(b, a) == overlap
    assert bool((in_pass(a, times_s) & in_pass(b, times_s)).any()) == overlap


@pytest.mark.parametrize("count", [2, 3, 5])
def test_staggered_offsets_never_overlap_while_passes_fit(count):
    offsets = staggered_offsets_s(INTERVAL_S, count)
    schedules = [schedule(offset, duration_s=INTERVAL_S / count) for offset in offsets]
    assert offsets[0] == 0.0 and all(0.0 <= o < INTERVAL_S for o in offsets)
    assert first_conflict(schedules) is None
    longer = [schedule(offset, duration_s=INTERVAL_S / count + 1.0) for offset in offsets]
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
def test_a_schedule_that_cannot_repeat_is_refused(changes, setting):
    with pytest.raises(ValueError, match=rf"^{setting}: "):
        schedule(0.0).replace(**changes)


def test_the_default_pass_must_fit_its_interval():
    with pytest.raises(ValueError, match=r"^pass_duration_s: "):
        SatelliteParams(pass_interval_s=60.0)
