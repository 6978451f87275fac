"""Monte Carlo gains and QBER against Ma et al. 2005 eqs. 5-6 (GYS parameters)."""

import numpy as np
import pytest

from adapters.qkd_sim import analytic, preset
from adapters.qkd_sim.channel import make_channel
from adapters.qkd_sim.montecarlo import CHUNK_PULSES, simulate_pulses

PULSES = 4 * CHUNK_PULSES + 12345  # several chunks plus a ragged tail


def _run(params, seed=3):
    return simulate_pulses(params, PULSES, np.random.default_rng(seed), make_channel(params, None))


@pytest.mark.parametrize("length_km", [0.0, 30.0, 60.0])
def test_gains_and_qber_match_analytic(length_km):
    # Q = Y0 + 1 - exp(-eta mu), E Q = e0 Y0 + e_d (1 - exp(-eta mu)) (Ma et al. 2005).
    p = preset("gys", length_km=length_km)
    tally, keys = _run(p)
    eta = analytic.transmittance(p)
    for k, intensity in enumerate(p.intensities[:2]):
        expected_q = analytic.gain(p, intensity, eta)
        sigma_q = np.sqrt(expected_q / tally.sent[k])
        assert tally.gains()[k] == pytest.approx(expected_q, abs=5 * sigma_q)
        expected_e = analytic.error_gain(p, intensity, eta) / expected_q
        n_sifted = tally.sifted[k].sum()
        sigma_e = np.sqrt(expected_e * (1 - expected_e) / n_sifted)
        assert tally.error_rates()[k] == pytest.approx(expected_e, abs=5 * sigma_e + 2e-3)
    assert keys.alice.size == keys.bob.size == tally.sifted[:, 0].sum()


def test_chunking_accounts_for_every_pulse_and_is_deterministic():
    p = preset("gys", length_km=10.0)
    t1, k1 = _run(p, seed=9)
    t2, k2 = _run(p, seed=9)
    assert t1.sent.sum() == PULSES
    assert np.array_equal(k1.bob, k2.bob) and np.array_equal(t1.errors, t2.errors)


def test_sifting_uses_bases_about_p_z_squared():
    p = preset("gys", length_km=0.0)
    tally, _ = _run(p)
    share_z = tally.sent_matched[:, 0].sum() / tally.sent.sum()
    assert share_z == pytest.approx(p.p_z ** 2, abs=3e-3)


def test_afterpulsing_raises_gain_and_errors():
    base = preset("gys", length_km=0.0)
    with_ap = base.replace(afterpulse_prob=0.05)
    t0, _ = _run(base)
    t1, _ = _run(with_ap)
    # ~Q * p_ap extra clicks, each with a random bit (50 % error)
    assert t1.gains()[2] > 10 * t0.gains()[2]
    assert t1.error_rates()[0] > t0.error_rates()[0] + 0.005
