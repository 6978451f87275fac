"""The parameter optimiser: never worse than fixed values, positive where the references say.

Reference values (issue 14, "our own check": the project's Chernoff bounds on expected
counts, GYS, f = 1.22, no disclosed QBER sample): a positive finite key needs ~1.2e8 /
2.5e8 / 9e8 pulses at 10 / 25 / 50 km with the fixed parameters, ~1.3e7 / 2.8e7 / 1.0e8
with optimised ones.  Both are given to two figures; we test at the upper end of that
rounding.
"""

import numpy as np
import pytest

from adapters.qkd_sim import InvalidLinkParams, analytic, preset
from adapters.qkd_sim.expected import (click_and_error_probs, expected_counts, expected_key_balance,
                                       expected_key_rate, key_rate_objective)
from adapters.qkd_sim.optimize import optimal_parameters

OPTIMISED_REFERENCE = {10.0: 1.35e7, 25.0: 2.85e7, 50.0: 1.05e8}  # "~1.3e7 / 2.8e7 / 1.0e8"
FIXED_REFERENCE = {10.0: 1.25e8, 25.0: 2.55e8, 50.0: 9.5e8}  # "~1.2e8 / 2.5e8 / 9e8"


@pytest.mark.parametrize("length_km", sorted(OPTIMISED_REFERENCE))
def test_optimiser_finds_a_key_where_the_reference_says_one_exists(length_km):
    params = preset("gys", length_km=length_km)
    pulses = OPTIMISED_REFERENCE[length_km]
    choice = optimal_parameters(params, pulses)
    assert choice.rate_bits_per_pulse > 0.0
    assert expected_key_rate(choice.params, pulses) == pytest.approx(choice.rate_bits_per_pulse)
    assert expected_key_rate(params, pulses) == 0.0  # the fixed values give nothing there ...
    assert expected_key_rate(params, FIXED_REFERENCE[length_km]) > 0.0  # ... until ~8x more pulses


@pytest.mark.parametrize("name, length_km, pulses", [
    ("gys", 25.0, 1e9), ("gys", 80.0, 1e10), ("snspd-illustrative", 10.0, 3e6), ("toshiba-2013", 50.0, 1e9)])
def test_optimiser_is_never_worse_than_the_fixed_parameters(name, length_km, pulses):
    params = preset(name, length_km=length_km)
    choice = optimal_parameters(params, pulses)
    assert choice.rate_bits_per_pulse >= choice.start_rate_bits_per_pulse
    assert expected_key_rate(choice.params, pulses) >= expected_key_rate(params, pulses)
    p = choice.params
    assert p.mu > p.nu + p.mu3 and p.p_mu + p.p_nu < 1.0 and 0.5 <= p.p_z < 1.0


@pytest.mark.parametrize("name", ["gys", "toshiba-2013", "lim2014"])
@pytest.mark.parametrize("length_km", [0.0, 60.0])
def test_optimised_rates_stay_below_plob(name, length_km):
    # Repeaterless bound -log2(1 - eta) (Pirandola et al. 2017), also for the best parameters.
    params = preset(name, length_km=length_km)
    assert 0.0 < optimal_parameters(params, 1e11).rate_bits_per_pulse < analytic.plob_bound(params)


def test_fixed_names_stay_fixed_and_unknown_names_are_refused():
    params = preset("gys", length_km=25.0)
    choice = optimal_parameters(params, 1e9, frozenset({"mu", "p_z"}))
    assert (choice.params.mu, choice.params.p_z) == (params.mu, params.p_z)
    assert choice.params.nu != params.nu
    with pytest.raises(InvalidLinkParams, match="unknown parameter"):
        optimal_parameters(params, 1e9, frozenset({"alpha"}))


def test_choices_are_cached():
    params = preset("gys", length_km=33.0)
    assert optimal_parameters(params, 5e8) is optimal_parameters(params, 5e8)


def test_hoeffding_is_the_weaker_bound_at_small_counts():
    # Lim et al.'s deviation sqrt(n/2 ln(1/eps)) on the total weighs on the small vacuum
    # and decoy counts of a 1e8-pulse frame (rate 0.66x of per-count Chernoff's here).
    params = preset("gys", length_km=25.0)
    chernoff = optimal_parameters(params, 1e8).rate_bits_per_pulse
    hoeffding = optimal_parameters(params.replace(deviation_bound="hoeffding"), 1e8).rate_bits_per_pulse
    assert 0.0 < hoeffding < 0.8 * chernoff


# --- Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Sec. IV and Fig. 1 --------------
# Their evaluation: block size n_X of key-basis detections (N = n_X / P(key-basis click));
# Hoeffding deviations; after-pulses in the same gate, R_k = D_k (1 + p_ap), errors
# + p_ap D_k / 2; lambda_EC = f_EC n_X h(e_obs); no disclosed QBER sample;
# eps_sec = kappa * l with kappa = 1e-15 (solved by iteration); eps_cor = 1e-15;
# {mu1, mu2, p_mu1, p_mu2, q} optimised, mu3 = 2e-4.

KAPPA = 1e-15


def lim_objective(params, block_bits: float) -> float:
    click, _, _ = click_and_error_probs(params, "same-gate")
    pulses = block_bits / (params.p_z ** 2 * float(np.dot(params.intensity_probs, click)))
    counts = expected_counts(params, pulses, "same-gate")
    eps_sec = 1e-10
    for _ in range(4):
        entropy, cost = expected_key_balance(params, counts, 0.0, eps_sec)
        eps_sec = KAPPA * max(entropy - cost, 1.0)
    return key_rate_objective(entropy, cost, pulses)


def lim_rate(length_km: float, block_bits: float) -> float:
    params = preset("lim2014", length_km=length_km, deviation_bound="hoeffding")
    return optimal_parameters(params, block_bits, objective=lim_objective).rate_bits_per_pulse


@pytest.mark.slow
def test_lim_et_al_block_size_1e9_vs_1e7_at_100_km():
    # "at a fiber length of 100 km, the secret key rate obtained with n_X = 10^9 is about
    # 1.75 times the one based on n_X = 10^7" (Lim et al. 2014, Sec. IV).  We get 1.707.
    assert lim_rate(100.0, 1e9) / lim_rate(100.0, 1e7) == pytest.approx(1.75, rel=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("block_bits, reach_km", [(1e4, 108.7), (1e6, 167.8), (1e9, 182.7)])
def test_lim_et_al_reach_per_block_size(block_bits, reach_km):
    # Lim et al. state that n_X = 10^4 still reaches 135 km; with their printed formulas and
    # parameters we reach 108.7 km (docs/simulation.md: not reproduced).  Larger blocks
    # reach further, towards the x-axis end (200 km) of their Fig. 1.  Our reach is
    # checked to +-1 km: a key 1 km short of it, none 1 km beyond.
    assert lim_rate(reach_km - 1.0, block_bits) > 0.0
    assert lim_rate(reach_km + 1.0, block_bits) <= 0.0
