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
from adapters.qkd_sim.entropy import binary_entropy
from adapters.qkd_sim.expected import (click_and_error_probs, expected_bounds, expected_counts,
                                       expected_key_balance, expected_key_rate, key_rate_objective)
from adapters.qkd_sim.finite_key import epsilon_cost_bits
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


def lim_balance(params, block_bits: float, iterations: int = 4):
    """(entropy, cost, pulses, counts, eps_sec) of Lim et al.'s evaluation for block size n_X."""
    click, _, _ = click_and_error_probs(params, "same-gate")
    pulses = block_bits / (params.p_z ** 2 * float(np.dot(params.intensity_probs, click)))
    counts = expected_counts(params, pulses, "same-gate")
    eps_sec = 1e-10
    for _ in range(iterations):
        entropy, cost = expected_key_balance(params, counts, 0.0, eps_sec)
        eps_sec = KAPPA * max(entropy - cost, 1.0)
    return entropy, cost, pulses, counts, eps_sec


def lim_objective(params, block_bits: float) -> float:
    entropy, cost, pulses, _, _ = lim_balance(params, block_bits)
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
    # parameters we reach 108.7 km (docs/simulation.md: not reproduced, with the account
    # of the key at 135 km that the next test checks).  Larger blocks reach further,
    # towards the x-axis end (200 km) of their Fig. 1.  Our reach is checked to +-1 km: a
    # key 1 km short of it, none 1 km beyond.
    assert lim_rate(reach_km - 1.0, block_bits) > 0.0
    assert lim_rate(reach_km + 1.0, block_bits) <= 0.0


@pytest.mark.parametrize("mu1, mu2, p_mu1, p_mu2, q_x, entropy_bits, lambda_ec_bits, length_bits", [
    # the parameters maximising the key length at 135 km within our box (q_x >= 1/2) ...
    (0.6329, 0.1409, 0.0480, 0.4786, 0.5, 1726.0, 3400.0, -2050.0),
    # ... and with q_x free (it goes to the 0.001 floor: unlimited test-basis statistics)
    (0.5221, 0.1141, 0.0567, 0.5452, 0.001, 3404.0, 3481.0, -454.0),
])
def test_lim_et_al_1e4_at_135_km_term_by_term(mu1, mu2, p_mu1, p_mu2, q_x, entropy_bits, lambda_ec_bits,
                                              length_bits):
    # docs/simulation.md's account of why n_X = 10^4 gives no key at 135 km on the printed
    # formulas (Lim et al. 2014 eqs. 1-5): lambda_EC = f_EC n_X h(e_obs) over all
    # intensities, and the phase-error bound, outweigh s_X,1 (1 - h(phi_X)); s_X,0 is 0.
    params = preset("lim2014", length_km=135.0, deviation_bound="hoeffding").replace(
        mu=mu1, nu=mu2, p_mu=p_mu1, p_nu=p_mu2, p_z=q_x)
    entropy, cost, _, counts, eps_sec = lim_balance(params, 1e4, iterations=6)
    assert eps_sec == KAPPA  # no key: eps_sec = kappa * max(l, 1)
    bounds = expected_bounds(params, counts, eps_sec)
    assert bounds.s_z0 == 0.0
    lambda_ec = params.ec_efficiency * 1e4 * float(binary_entropy(counts.qber_z))
    assert counts.z_counts.sum() == pytest.approx(1e4)
    assert counts.z_errors[2] / counts.z_counts[2] == pytest.approx(0.4847, abs=1e-3)  # mu3: dark counts
    assert entropy == pytest.approx(entropy_bits, rel=0.01)
    assert lambda_ec == pytest.approx(lambda_ec_bits, rel=0.01)
    assert cost - lambda_ec == pytest.approx(epsilon_cost_bits(KAPPA, params.eps_cor))  # 376 bits
    assert entropy - cost == pytest.approx(length_bits, rel=0.01)
