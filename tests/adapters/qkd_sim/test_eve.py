"""Eavesdroppers: intercept-resend (Bennett et al. 1992) and PNS (Brassard et al. 2000)."""

import math

import pytest

from adapters.qkd_sim import EveSpec, analytic, preset, run_link
from adapters.qkd_sim.channel import pns_gain, pns_transmittance

SNSPD = preset("snspd-illustrative", length_km=25.0)
PULSES = 3_000_000


def test_full_intercept_resend_gives_25_percent_and_no_key():
    stats = run_link(SNSPD, PULSES, seed=1, eve=EveSpec("intercept-resend", 1.0)).stats
    assert stats.qber == pytest.approx(0.25 + SNSPD.misalignment_error / 2, abs=0.02)
    assert stats.aborted and stats.secret_bits == 0
    assert "above abort threshold 11.0%: possible eavesdropper" in stats.abort_reason


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_partial_intercept_resend_raises_qber_by_a_quarter_of_fraction(fraction):
    honest = run_link(SNSPD, PULSES, seed=2).stats
    attacked = run_link(SNSPD, PULSES, seed=2, eve=EveSpec("intercept-resend", fraction)).stats
    # QBER rises by ~fraction/4 (reduced slightly by e_d: (1 - 2 e_d) fraction / 4)
    rise = attacked.qber - honest.qber
    assert rise == pytest.approx(fraction / 4 * (1 - 2 * SNSPD.misalignment_error), abs=0.012)
    assert attacked.e1_upper > honest.e1_upper
    assert attacked.secret_bits < max(honest.secret_bits, 1)


def test_pns_transmittance_makes_signal_gain_look_honest():
    p = preset("gys", length_km=60.0)
    eta, dev = analytic.transmittance(p), p.eta_bob * p.detector_efficiency
    t = pns_transmittance(p.mu, eta, dev, 1.0)
    assert 0.0 < t < 1.0
    assert pns_gain(p.mu, eta, dev, 1.0, t) == pytest.approx(1 - math.exp(-eta * p.mu))
    # ...but the decoy gain drops (fewer multi-photon pulses): what decoy states detect
    assert pns_gain(p.nu, eta, dev, 1.0, t) < 0.5 * (1 - math.exp(-eta * p.nu))


def test_pns_is_caught_by_the_decoy_bounds():
    params = preset("snspd-illustrative", length_km=60.0)
    honest = run_link(params, PULSES, seed=3).stats
    attacked = run_link(params, PULSES, seed=3, eve=EveSpec("pns", 1.0)).stats
    assert attacked.gains[0] == pytest.approx(honest.gains[0], rel=0.05)  # signal looks normal
    assert attacked.gains[1] < 0.7 * honest.gains[1]
    assert attacked.qber < 0.05  # QBER alone would not reveal the attack
    assert attacked.y1_lower < 0.2 * honest.y1_lower
    assert attacked.aborted and attacked.secret_bits == 0
