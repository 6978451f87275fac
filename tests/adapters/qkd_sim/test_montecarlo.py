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


def test_emitter_samples_intensity_and_poisson_photon_number():
    from scipy import stats

    from adapters.qkd_sim.montecarlo import _Emitter
    p = preset("gys", length_km=0.0)
    emitter = _Emitter(p)
    k, photons = emitter.emit(np.random.default_rng(11), 2_000_000)
    for idx, (prob, mean) in enumerate(zip(p.intensity_probs, p.intensities)):
        sent = k == idx
        assert sent.mean() == pytest.approx(prob, abs=5 * np.sqrt(prob / 2e6))
        counts = np.bincount(photons[sent], minlength=4)[:4] / sent.sum()
        expected = stats.poisson.pmf(np.arange(4), mean)
        assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected / sent.sum()) + 1e-9)
    u = np.random.default_rng(12).random(1 << 20)
    guided = emitter.guide[(u * len(emitter.guide)).astype(np.intp)]
    exact = np.searchsorted(emitter.cdf, u, side="right")
    decided = emitter.decided[(u * len(emitter.guide)).astype(np.intp)]
    assert np.array_equal(guided[decided], exact[decided])  # the guide table alone is exact there


def test_sparse_dark_clicks_are_bernoulli():
    from adapters.qkd_sim.montecarlo import _bernoulli_mask
    rng = np.random.default_rng(13)
    assert _bernoulli_mask(rng, 1000, 0.0).sum() == 0 and _bernoulli_mask(rng, 1000, 1.0).all()
    hits = sum(int(_bernoulli_mask(rng, 1 << 20, 1e-3).sum()) for _ in range(8))
    expected = 8 * (1 << 20) * 1e-3
    assert hits == pytest.approx(expected, abs=5 * np.sqrt(expected))


def test_tally_histogram_equals_direct_counts():
    from adapters.qkd_sim.montecarlo import _tally
    rng = np.random.default_rng(14)
    k = rng.integers(0, 3, 10_000).astype(np.intp)
    basis, matched, clicked, errors = (rng.integers(0, 2, 10_000, dtype=np.uint8) for _ in range(4))
    tally = _tally(k, basis, matched, clicked, errors)
    sifted = (matched & clicked).astype(bool)
    for i in range(3):
        assert tally.sent[i] == np.sum(k == i) and tally.clicked[i] == np.sum((k == i) & (clicked == 1))
        for b in range(2):
            cell = (k == i) & (basis == b)
            assert tally.sent_matched[i, b] == np.sum(cell & (matched == 1))
            assert tally.sifted[i, b] == np.sum(cell & sifted)
            assert tally.errors[i, b] == np.sum(cell & sifted & (errors == 1))
