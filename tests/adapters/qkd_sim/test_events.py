"""Event-level sampler against the pulse-level reference, and the detectors' dead time.

Both samplers draw from the same law, so their counts agree within statistical error.
Tolerances: a count x of a sum of (nearly) independent Bernoulli trials has standard
deviation <= sqrt(x); the difference of two independent runs therefore has
sigma <= sqrt(x1 + x2), and we allow 5 sigma (a false alarm below 1e-6 per comparison).
The decoy bounds are smooth functions of the counts; each sampler runs with several
seeds and the difference of the means is compared with 5 standard errors of the runs'
own scatter.
"""

import numpy as np
import pytest

from adapters.qkd_sim import EveSpec, analytic, preset
from adapters.qkd_sim.channel import make_channel
from adapters.qkd_sim.detector_memory import DetectorState, register_clicks
from adapters.qkd_sim.engine import max_click_rate_hz
from adapters.qkd_sim.estimation import finite_bounds, yield_and_error_bounds
from adapters.qkd_sim.expected import click_and_error_probs
from adapters.qkd_sim.events import gate_law, simulate_events
from adapters.qkd_sim.montecarlo import simulate_pulses

CASES = {
    "honest": (preset("gys", length_km=10.0), None),
    "dead time and after-pulses": (preset("gys", length_km=10.0, afterpulse_prob=0.05, dead_time_s=20e-9), None),
    "intercept-resend 30 %": (preset("gys", length_km=10.0), EveSpec("intercept-resend", 0.3)),
    "photon-number splitting": (preset("snspd-illustrative", length_km=60.0), EveSpec("pns", 1.0)),
}


def both(params, eve, pulses, seed):
    channel = make_channel(params, eve)
    return [sampler(params, pulses, np.random.default_rng(seed), channel)
            for sampler in (simulate_pulses, simulate_events)]


def assert_counts_agree(a, b):
    for name in ("sent", "clicked", "sent_matched", "sifted", "errors"):
        x, y = getattr(a, name).astype(float), getattr(b, name).astype(float)
        assert np.all(np.abs(x - y) <= 5.0 * np.sqrt(x + y) + 1.0), (name, x, y)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gains_qber_and_key_agree_with_the_pulse_level_reference(case):
    params, eve = CASES[case]
    (t_pulse, k_pulse), (t_event, k_event) = both(params, eve, 6_000_000, seed=4)
    assert_counts_agree(t_pulse, t_event)
    assert k_event.alice.size == t_event.sifted[:, 0].sum()
    errors = [np.count_nonzero(k.alice != k.bob) for k in (k_pulse, k_event)]
    assert abs(errors[0] - errors[1]) <= 5.0 * np.sqrt(sum(errors)) + 1.0


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_decoy_bounds_agree_with_the_pulse_level_reference(case):
    params, eve = CASES[case]
    runs = {"pulses": [], "events": []}
    for seed in range(6):
        for name, (tally, _) in zip(runs, both(params, eve, 20_000_000, seed)):
            runs[name].append(yield_and_error_bounds(finite_bounds(tally, params), tally, params))
    pulse, event = np.array(runs["pulses"]), np.array(runs["events"])
    stderr = np.sqrt(pulse.var(axis=0, ddof=1) / len(pulse) + event.var(axis=0, ddof=1) / len(event))
    assert np.all(np.abs(pulse.mean(axis=0) - event.mean(axis=0)) <= 5.0 * stderr + 1e-12)


def test_event_gate_law_matches_the_analytic_gain():
    # Q = 1 - (1 - Y0) exp(-eta mu), E Q = e_d (1 - e^{-eta mu}) + Y0/2 to first order (Ma et al. 2005).
    params = preset("gys", length_km=30.0)
    law = gate_law(params, make_channel(params, None))
    eta = analytic.transmittance(params)
    signal_zz = 0  # class (signal, Z, Z)
    q = 1.0 - law.outcome[signal_zz, 0]
    assert q == pytest.approx(1.0 - (1.0 - params.dark_count_prob) * np.exp(-eta * params.mu), rel=1e-9)
    e = (law.outcome[signal_zz, 2] + 0.5 * law.outcome[signal_zz, 3]) / q
    assert e == pytest.approx(analytic.error_gain(params, params.mu, eta) / q, rel=2e-3)


@pytest.mark.parametrize("raw_prob, dead_gates", [(0.02, 0), (0.02, 49), (0.3, 49), (0.9, 9)])
def test_dead_time_saturates_the_click_rate_as_the_detector_model_says(raw_prob, dead_gates):
    # Non-paralysable dead time D after each click: registered rate r / (1 + r D) per gate.
    gates = 2_000_000
    rng = np.random.default_rng(dead_gates)
    raw = np.flatnonzero(rng.random(gates) < raw_prob)
    clicks = register_clicks(raw, np.ones(raw.size, bool), np.zeros(raw.size, bool), gates, dead_gates, 0.0,
                             DetectorState(), rng)
    expected = gates * raw_prob / (1.0 + raw_prob * dead_gates)
    assert clicks.gates.size == pytest.approx(expected, abs=5.0 * np.sqrt(expected) + 1.0)
    assert np.all(np.diff(clicks.gates) > dead_gates)  # never faster than the detector's maximum


@pytest.mark.parametrize("dead_time_s, saturation", [(0.0, 0.1), (10e-9, 0.5), (50e-9, 0.8)])
def test_a_saturating_link_clicks_as_often_as_the_detector_model_says(dead_time_s, saturation):
    # Back to back (0 km) with efficient detectors a detector clicks in ~1/4 of the gates
    # when live: 10 and 50 gates of dead time leave it live 46 % and 15 % of the time.
    # The event sampler's registered clicks per intensity match the model's live fraction
    # (expected.py); the click rate approaches, and stays below, the detectors' maximum.
    params = preset("snspd-illustrative", length_km=0.0, dead_time_s=dead_time_s)
    pulses = 4_000_000
    tally, _ = simulate_events(params, pulses, np.random.default_rng(5), make_channel(params, None))
    click, _, _ = click_and_error_probs(params)
    expected = pulses * np.asarray(params.intensity_probs) * click
    assert np.all(np.abs(tally.clicked - expected) <= 5.0 * np.sqrt(expected) + 1.0), (tally.clicked, expected)
    click_rate_hz = tally.clicked.sum() / pulses * params.pulse_rate_hz
    assert saturation * max_click_rate_hz(params) < click_rate_hz < max_click_rate_hz(params)


def test_after_pulses_follow_the_dead_time_and_do_not_repeat():
    raw = np.array([10, 11, 30])
    clicks = register_clicks(raw, np.ones(3, bool), np.zeros(3, bool), 100, 4, 1.0, DetectorState(),
                             np.random.default_rng(0))
    # 10 clicks; 11 falls in its dead time; after-pulse at 15 (no after-pulse of it);
    # 30 clicks, after-pulse at 35.
    assert clicks.gates.tolist() == [10, 15, 30, 35]
    assert clicks.raw_index.tolist() == [0, -1, 2, -1]


def test_detector_memory_carries_across_chunks():
    state, rng = DetectorState(), np.random.default_rng(1)
    first = register_clicks(np.array([98]), np.ones(1, bool), np.zeros(1, bool), 100, 4, 1.0, state, rng)
    second = register_clicks(np.array([101, 104, 109]), np.ones(3, bool), np.zeros(3, bool), 200, 4, 0.0,
                             state, rng)
    # 98's after-pulse falls due at 103, in the next chunk, and blinds the detector to 104.
    assert first.gates.tolist() == [98] and second.gates.tolist() == [103, 109]
    assert second.raw_index.tolist() == [-1, 2]


def test_event_sampler_cost_scales_with_detections():
    # 10^9 pulses at 100 km (GYS): a few hundred thousand events, not 10^9 pulse draws.
    params = preset("gys", length_km=100.0)
    tally, keys = simulate_events(params, 10**9, np.random.default_rng(2), make_channel(params, None))
    assert tally.sent.sum() == 10**9 and 0 < tally.clicked.sum() < 10**6
    assert keys.alice.size == tally.sifted[:, 0].sum()
