"""Asymptotic rates against the literature (GYS parameters, Ma et al. 2005 Table I)."""

import numpy as np
import pytest

from adapters.qkd_sim import analytic, preset

GYS = preset("gys")


def _max_distance(rate_fn, optimise_mu: bool) -> float:
    if optimise_mu:
        return analytic.max_distance_km(lambda p, L: analytic.optimal_rate(rate_fn, p, L)[0], GYS)
    return analytic.max_distance_km(lambda p, L: rate_fn(p, L), GYS)


def test_decoy_max_distance_gys_is_about_142_km():
    # Lo, Ma, Chen, PRL 94, 230504 (2005): GYS with f = 1.22 and infinite decoys
    # reaches ~142 km.  We obtain 142.0 km at mu = 0.48 and 142.2 km with mu optimised.
    assert _max_distance(analytic.infinite_decoy_rate, False) == pytest.approx(142.0, abs=0.3)
    assert _max_distance(analytic.infinite_decoy_rate, True) == pytest.approx(142.2, abs=0.3)


def test_vacuum_weak_decoy_reaches_nearly_the_infinite_decoy_distance():
    # Ma et al. 2005 Sec. V: vacuum + weak decoy comes close to the infinite-decoy limit.
    d = _max_distance(analytic.vacuum_weak_decoy_rate, False)
    assert 135.0 < d < 142.0


def test_no_decoy_gllp_max_distance_is_about_40_km():
    # GLLP without decoys, mu optimised per distance: ~40 km for GYS (we get 40.2 km),
    # cf. Lo, Ma, Chen 2005 Fig. 1 (a few tens of km).
    assert _max_distance(analytic.no_decoy_rate, True) == pytest.approx(40.2, abs=1.0)


@pytest.mark.parametrize("length_km", [0.0, 50.0, 100.0, 140.0])
def test_bounds_from_exact_statistics_are_conservative(length_km):
    # Ma et al. 2005 eqs. 34/37 on noise-free gains: Y1^L <= Y1 and e1^U >= e1.
    eta = analytic.transmittance(GYS, length_km)
    y1, e1 = analytic.single_photon_true(GYS, eta)
    b = analytic.expected_bounds(GYS, length_km)
    assert 0.8 * y1 < b.y1_lower <= y1
    assert e1 <= b.e1_upper < e1 + 0.02


@pytest.mark.parametrize("length_km", np.linspace(0.0, 150.0, 16))
def test_every_analytic_rate_is_below_plob(length_km):
    plob = analytic.plob_bound(GYS, length_km)
    assert analytic.optimal_rate(analytic.infinite_decoy_rate, GYS, length_km)[0] < plob
    assert analytic.vacuum_weak_decoy_rate(GYS, length_km) < plob


def test_plob_value():
    # -log2(1 - eta), Pirandola et al. 2017; eta = 0.045 at 0 km gives 0.0664 bit/pulse.
    assert analytic.plob_bound(GYS, 0.0) == pytest.approx(-np.log2(1 - 0.045))
