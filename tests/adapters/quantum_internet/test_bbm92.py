"""BBM92 against the published model of Ma, Fung, Lo, PRA 76, 012307 (2007) (MFL).

The expected values are MFL's expressions, written out here from the paper (gain and
error rate of the entangled PDC source, source in the middle or at one end), not taken
from the code under test; the Monte Carlo built from photon numbers and threshold
detectors must reproduce them, and the Bell value follows S = 2 sqrt(2) (1 - 2E).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.quantum_internet.bbm92 import run_bbm92
from adapters.quantum_internet.bbm92_model import Bbm92Params, asymptotic_rate, chsh_value, gain, qber
from adapters.quantum_internet.bbm92_sampling import chsh_estimate, sample_coincidences, sample_pulses

GYS = dict(alpha_db_per_km=0.21, detector_efficiency_a=0.045, detector_efficiency_b=0.045, visibility=1 - 2 * 0.033,
           dark_count_rate_hz=850.0, coincidence_window_s=1e-9, mean_pairs_per_pulse=0.1)


def mfl_gain_and_qber(eta_a: float, eta_b: float, lam: float, y0: float, e_d: float) -> tuple[float, float]:
    """MFL eqs. for Q_lambda and E_lambda (e0 = 1/2), as printed in the paper."""
    both = 1 + eta_a * lam + eta_b * lam - eta_a * eta_b * lam
    q = 1 - (1 - y0) / (1 + eta_a * lam) ** 2 - (1 - y0) / (1 + eta_b * lam) ** 2 + (1 - y0) ** 2 / both ** 2
    eq = 0.5 * q - 2 * (0.5 - e_d) * eta_a * eta_b * lam * (1 + lam) / ((1 + eta_a * lam) * (1 + eta_b * lam) * both)
    return q, eq / q


def mfl_arms(length_km: float, position: str) -> tuple[float, float]:
    """Source in the middle: each arm has L/2 of fibre; at Alice's end: Bob's arm has all of it."""
    loss = 10 ** (-0.21 * length_km / 10)
    return (0.045 * math.sqrt(loss),) * 2 if position == "middle" else (0.045, 0.045 * loss)


@pytest.mark.parametrize("position", ["middle", "alice"])
@pytest.mark.parametrize("length_km", [0.0, 50.0, 100.0, 150.0])
def test_closed_form_is_mfl(length_km: float, position: str) -> None:
    params = Bbm92Params(length_km=length_km, source_position=position, **GYS)
    q, e = mfl_gain_and_qber(*mfl_arms(length_km, position), 0.05, 1 - math.exp(-2 * 850 * 1e-9), 0.033)
    assert gain(params) == pytest.approx(q, rel=1e-9)
    # Our correlated term keeps the factor 1 - Y0 that MFL's printed expression drops
    # (relative difference ~ Y0 (1/2 - E) / E, about 1e-5 here).
    assert qber(params) == pytest.approx(e, rel=5e-5)


def test_key_rate_is_mfls_and_falls_with_distance() -> None:
    rates = []
    for length_km in (0.0, 50.0, 100.0):
        params = Bbm92Params(length_km=length_km, **GYS)
        q, e = mfl_gain_and_qber(*mfl_arms(length_km, "middle"), 0.05, params.background_prob, 0.033)
        h = -e * math.log2(e) - (1 - e) * math.log2(1 - e)
        assert asymptotic_rate(params) == pytest.approx(0.5 * q * (1 - 1.22 * h - h), rel=1e-4)
        rates.append(asymptotic_rate(params))
    assert rates[0] > rates[1] > rates[2] > 0


@pytest.mark.parametrize("length_km", [0.0, 20.0, 40.0])
def test_photon_level_monte_carlo_reproduces_mfl(length_km: float) -> None:
    """Efficient detectors and a bright source, so that 2e6 pulses give tight statistics
    and multi-pair double clicks matter."""
    params = Bbm92Params(length_km=length_km, mean_pairs_per_pulse=0.3, detector_efficiency_a=0.6,
                         detector_efficiency_b=0.6, dark_count_rate_hz=5e4, coincidence_window_s=1e-9)
    tally = sample_pulses(params, 2_000_000, np.random.default_rng(7))
    q, e = mfl_gain_and_qber(*(0.6 * math.sqrt(10 ** (-0.021 * length_km)),) * 2, 0.15,
                             params.background_prob, params.misalignment_error)
    sigma_q = math.sqrt(q * (1 - q) / tally.pulses)
    assert tally.coincidences / tally.pulses == pytest.approx(q, abs=5 * sigma_q)
    sigma_e = math.sqrt(e * (1 - e) / tally.coincidences)
    assert tally.errors / tally.coincidences == pytest.approx(e, abs=5 * sigma_e + 1e-4)


@pytest.mark.parametrize("length_km", [0.0, 25.0, 50.0])
def test_bell_value_follows_the_qber(length_km: float) -> None:
    params = Bbm92Params(length_km=length_km, **GYS)
    frame = sample_coincidences(params, 10**11, np.random.default_rng(3))
    s, sigma = chsh_estimate(frame.chsh_trials, frame.chsh_agreements)
    _, e = mfl_gain_and_qber(*mfl_arms(length_km, "middle"), 0.05, params.background_prob, 0.033)
    expected = 2 * math.sqrt(2) * (1 - 2 * e)
    assert chsh_value(qber(params)) == pytest.approx(expected, rel=1e-4)
    assert 2.0 < expected < 2 * math.sqrt(2)
    assert s == pytest.approx(expected, abs=5 * sigma)


def test_intercept_resend_on_one_arm_drives_s_to_the_classical_bound_and_aborts() -> None:
    params = Bbm92Params(length_km=25.0, detector_efficiency_a=0.6, detector_efficiency_b=0.6)
    honest = run_bbm92(params, 10**8, seed=5)
    attacked = run_bbm92(params, 10**8, seed=5, eve_fraction=1.0)
    assert not honest.stats.aborted and honest.keys_match and honest.stats.chsh_s > 2.3
    assert attacked.stats.aborted and not attacked.alice_key and not attacked.bob_key
    assert attacked.stats.chsh_s <= 2.0
    # Eve in the wrong basis half the time: E = E0 + (1/2)(1/2 - E0).
    e0 = qber(params)
    assert attacked.stats.qber == pytest.approx(e0 + 0.5 * (0.5 - e0), abs=0.01)
    assert "Bell value" in attacked.stats.abort_reason and "eavesdropper" in attacked.stats.abort_reason
    assert "QBER" in attacked.stats.abort_reason


def test_a_partial_attack_is_seen_in_s() -> None:
    params = Bbm92Params(length_km=10.0, detector_efficiency_a=0.6, detector_efficiency_b=0.6)
    honest, partial = (run_bbm92(params, 10**8, seed=9, eve_fraction=f).stats for f in (0.0, 0.3))
    assert partial.chsh_s < honest.chsh_s - 0.2
    assert partial.qber > honest.qber + 0.04


def test_runs_are_seeded_and_both_keys_agree() -> None:
    params = Bbm92Params(length_km=10.0, detector_efficiency_a=0.6, detector_efficiency_b=0.6)
    first, again = run_bbm92(params, 5 * 10**7, seed=11), run_bbm92(params, 5 * 10**7, seed=11)
    assert first.keys_match and first.alice_key == again.alice_key
    assert 0 < first.stats.secret_bits < first.stats.sifted_bits
    assert first.stats.secret_bits_per_pulse < params.p_z ** 2 * gain(params)


def test_too_few_pulses_abort_with_a_reason() -> None:
    run = run_bbm92(Bbm92Params(length_km=100.0), 10**6, seed=1)
    assert run.stats.aborted and run.stats.abort_reason
