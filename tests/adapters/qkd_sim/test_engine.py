"""End-to-end runs of the engine: keys, determinism, PLOB, no key material in output."""

import hashlib

import pytest

from adapters.qkd_sim import analytic, preset, run_link

SNSPD = preset("snspd-illustrative", length_km=25.0)


@pytest.fixture(scope="module")
def run():
    return run_link(SNSPD, 8_000_000, seed=11)


def test_produces_identical_keys_of_the_bound_length(run):
    s = run.stats
    assert not s.aborted, s.abort_reason
    assert s.secret_bits > 0 and len(run.alice_key) * 8 == s.secret_bits
    assert run.keys_match
    assert run.alice_key is not run.bob_key
    assert s.frames_failed <= 1 and 1.0 < s.reconciliation_efficiency < 1.15


def test_same_seed_same_keys_different_seed_different_keys(run):
    again = run_link(SNSPD, 8_000_000, seed=11)
    other = run_link(SNSPD, 8_000_000, seed=12)
    digest = lambda r: hashlib.sha256(r.alice_key).hexdigest()
    assert digest(again) == digest(run) and again.stats == run.stats
    assert digest(other) != digest(run)


def test_bounds_are_conservative_in_the_simulation(run):
    eta = analytic.transmittance(SNSPD)
    y1, e1 = analytic.single_photon_true(SNSPD, eta)
    assert run.stats.y1_lower < y1 and run.stats.e1_upper > e1


def test_key_material_never_in_repr_or_stats(run):
    text = repr(run) + str(run.stats.as_dict())
    assert run.alice_key.hex()[:16] not in text
    assert "alice_key" not in str(run.stats.as_dict())


@pytest.mark.parametrize("name, length_km, pulses", [
    ("snspd-illustrative", 0.0, 2_000_000), ("snspd-illustrative", 50.0, 4_000_000),
    ("gys", 0.0, 4_000_000), ("toshiba-2013", 25.0, 100_000_000)])
def test_simulated_rates_below_plob(name, length_km, pulses):
    params = preset(name, length_km=length_km)
    stats = run_link(params, pulses, seed=5).stats
    plob = analytic.plob_bound(params)
    assert stats.secret_bits_per_pulse < plob
    assert stats.asymptotic_bits_per_pulse < plob


def test_asymptotic_estimate_close_to_analytic_at_short_distance():
    params = preset("gys", length_km=0.0)
    stats = run_link(params, 6_000_000, seed=8).stats
    assert stats.asymptotic_bits_per_pulse == pytest.approx(
        analytic.vacuum_weak_decoy_rate(params), rel=0.15)


def test_too_few_pulses_aborts_with_reason():
    stats = run_link(preset("gys", length_km=100.0), 100_000, seed=1).stats
    assert stats.aborted and stats.abort_reason
