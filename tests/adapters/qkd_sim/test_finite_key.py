"""Concentration bounds and finite-key arithmetic at stated inputs."""

import math

import pytest

from adapters.qkd_sim.decoy import (FiniteDecoyBounds, chernoff_expectation_bounds,
                                    finite_decoy_bounds, tau)
from adapters.qkd_sim.finite_key import (epsilon_cost_bits, phase_error_gamma, remove_disclosed,
                                         secret_length)


def test_chernoff_bounds_closed_form():
    # x = 10000, eps = 1e-10: L = ln(1e10) = 23.0259;
    # lower = x + L/2 - sqrt(L^2/4 + 2 L x), upper = x + L + sqrt(L^2 + 2 L x).
    lo, hi = chernoff_expectation_bounds(10_000, 1e-10)
    assert lo == pytest.approx(9_332.80, abs=0.01)
    assert hi == pytest.approx(10_702.03, abs=0.01)
    assert chernoff_expectation_bounds(0, 1e-10) == (0.0, pytest.approx(2 * math.log(1e10)))


def test_epsilon_cost_lim_et_al():
    # Lim et al. 2014 eq. 1: 6 log2(21/eps_sec) + log2(2/eps_cor)
    # eps_sec = 1e-10, eps_cor = 1e-15: 6*37.6118 + 50.8289 = 276.50 bits.
    assert epsilon_cost_bits(1e-10, 1e-15) == pytest.approx(276.50, abs=0.01)


def test_gamma_value():
    # gamma(a,b,c,d) of Lim et al. 2014 with a=1e-10, b=0.02, c=d=1e6.
    expected = math.sqrt(2e6 * 0.98 * 0.02 / (1e12 * math.log(2))
                         * math.log2(2e6 / (1e12 * 0.98 * 0.02) * 21 ** 2 / 1e-20))
    assert phase_error_gamma(1e-10, 0.02, 1e6, 1e6) == pytest.approx(expected)
    assert 0.0 < expected < 0.01


def test_secret_length_formula():
    b = FiniteDecoyBounds(s_z0=1_000.0, s_z1=500_000.0, s_x1=100_000.0, v_x1=2_000.0)
    result = secret_length(b, leak_ec_bits=120_000, disclosed_bits=0, eps_sec=1e-10, eps_cor=1e-15)
    phi = 0.02 + phase_error_gamma(1e-10, 0.02, 500_000.0, 100_000.0)
    h = -phi * math.log2(phi) - (1 - phi) * math.log2(1 - phi)
    expected = 1_000 + 500_000 * (1 - h) - 120_000 - epsilon_cost_bits(1e-10, 1e-15)
    assert result.length_bits == math.floor(expected)


def test_disclosed_bits_are_charged_worst_case():
    assert remove_disclosed(100.0, 1000.0, 0.05, 300) == (0.0, 800.0, pytest.approx(0.0625))


def test_decoy_counts_give_bounds_below_truth():
    # Noise-free expected counts from Y_n = 1 - (1-eta)^n (Y0 = 0): the bound on s_Z1
    # must not exceed the true number of single-photon detections.
    mus, probs, eta, n_zz = (0.5, 0.1, 0.0), (0.7, 0.2, 0.1), 0.01, 1e9
    counts = [n_zz * p * (1 - math.exp(-eta * m)) for m, p in zip(mus, probs)]
    true_s1 = n_zz * tau(1, mus, probs) * eta
    b = finite_decoy_bounds(counts, counts, [0.01 * c for c in counts], mus, probs, 1e-10 / 21)
    assert 0.7 * true_s1 < b.s_z1 < true_s1
