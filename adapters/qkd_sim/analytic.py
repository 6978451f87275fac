"""Asymptotic (infinite-key) model of the decoy-state BB84 link.

Formulas and their sources:

* channel: eta = eta_Bob * eta_det * 10^(-alpha L / 10)        (Ma et al. 2005, eq. 2)
* yields:  Y_n = Y0 + 1 - (1 - eta)^n ≈ Y0 + eta_n             (Ma et al. 2005, eq. 3)
* gain:    Q_mu = Y0 + 1 - exp(-eta mu)                          (Ma et al. 2005, eq. 5)
* QBER:    E_mu Q_mu = e0 Y0 + e_d (1 - exp(-eta mu)), e0 = 1/2  (Ma et al. 2005, eq. 6)
* GLLP rate with decoys:  R = q{-Q_mu f h(E_mu) + Q1 [1 - h(e1)]}
  (GLLP, QIC 4, 325 (2004); Lo, Ma, Chen, PRL 94, 230504 (2005), eq. 1)
* vacuum + weak decoy bounds Y1^L, e1^U: Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005),
  eqs. 34 and 37 (see :mod:`adapters.qkd_sim.decoy`).
* GLLP without decoys: multi-photon fraction bounded by P_multi = 1 - (1+mu)e^-mu,
  Omega = 1 - P_multi / Q_mu, R = q{-Q_mu f h(E_mu) + Q_mu Omega [1 - h(E_mu/Omega)]}.
* PLOB bound: -log2(1 - eta) bits per channel use (Pirandola, Laurenza, Ottaviani,
  Banchi, Nat. Commun. 8, 15043 (2017)).

q is the sifting factor of the link's protocol (:mod:`adapters.qkd_sim.protocols`):
p_z^2 for our efficient BB84 (key from Z coincidences only), 1/2 for the symmetric BB84
of Lo, Ma and Chen (keyed in both bases); q does not change the maximum distance.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from adapters.qkd_sim.decoy import DecoyBounds, vacuum_weak_decoy_bounds
from adapters.qkd_sim.entropy import binary_entropy
from adapters.qkd_sim.params import LinkParams
from adapters.qkd_sim.protocols import PROTOCOLS

E0 = 0.5  # error rate of background (dark) counts, Ma et al. 2005


def transmittance(params: LinkParams, length_km: float | None = None) -> float:
    """Total transmittance eta (channel * Bob optics * detector), Ma et al. eq. 2."""
    length = params.length_km if length_km is None else length_km
    channel = 10.0 ** (-params.alpha_db_per_km * length / 10.0)
    return channel * params.eta_bob * params.detector_efficiency


def gain(params: LinkParams, intensity: float, eta: float) -> float:
    """Expected gain Q = Y0 + 1 - exp(-eta * intensity), Ma et al. 2005 eq. 5."""
    return params.dark_count_prob + 1.0 - np.exp(-eta * intensity)


def error_gain(params: LinkParams, intensity: float, eta: float) -> float:
    """Expected E*Q = e0 Y0 + e_d (1 - exp(-eta * intensity)), Ma et al. 2005 eq. 6."""
    return E0 * params.dark_count_prob + params.misalignment_error * (1.0 - np.exp(-eta * intensity))


def single_photon_true(params: LinkParams, eta: float) -> tuple[float, float]:
    """True (Y1, e1) of the model: Y1 = Y0 + eta, e1 = (e0 Y0 + e_d eta)/Y1 (Ma et al. eqs. 3-4)."""
    y1 = params.dark_count_prob + eta
    return y1, (E0 * params.dark_count_prob + params.misalignment_error * eta) / y1


def sifting_factor(params: LinkParams) -> float:
    """q of the link's protocol: p_z^2 (efficient BB84) or 1/2 (symmetric BB84, GLLP)."""
    return PROTOCOLS[params.protocol].sifting_factor(params)


def gllp_rate(q: float, f: float, q_mu: float, e_mu: float, q1: float, e1: float) -> float:
    """GLLP key rate per pulse R = q{-Q_mu f h(E_mu) + Q1[1 - h(e1)]}, clipped at 0."""
    r = q * (-q_mu * f * binary_entropy(e_mu) + q1 * (1.0 - binary_entropy(e1)))
    return max(0.0, float(r))


def infinite_decoy_rate(params: LinkParams, length_km: float | None = None,
                        mu: float | None = None) -> float:
    """Asymptotic rate with perfectly known Y1, e1 (infinite decoys; Lo-Ma-Chen 2005)."""
    eta = transmittance(params, length_km)
    m = params.mu if mu is None else mu
    q_mu = gain(params, m, eta)
    y1, e1 = single_photon_true(params, eta)
    return gllp_rate(sifting_factor(params), params.ec_efficiency, q_mu,
                     error_gain(params, m, eta) / q_mu, y1 * m * np.exp(-m), e1)


def expected_bounds(params: LinkParams, length_km: float | None = None) -> DecoyBounds:
    """Vacuum + weak decoy bounds computed from the exact (noise-free) gains."""
    eta = transmittance(params, length_km)
    q_mu, q_nu = gain(params, params.mu, eta), gain(params, params.nu, eta)
    return vacuum_weak_decoy_bounds(params.mu, params.nu, q_mu, q_nu,
                                    error_gain(params, params.nu, eta) / q_nu,
                                    params.dark_count_prob)


def vacuum_weak_decoy_rate(params: LinkParams, length_km: float | None = None) -> float:
    """Asymptotic rate of the practical vacuum + weak decoy protocol (Ma et al. 2005)."""
    eta = transmittance(params, length_km)
    q_mu = gain(params, params.mu, eta)
    b = expected_bounds(params, length_km)
    return gllp_rate(sifting_factor(params), params.ec_efficiency, q_mu,
                     error_gain(params, params.mu, eta) / q_mu,
                     b.y1_lower * params.mu * np.exp(-params.mu), b.e1_upper)


def no_decoy_rate(params: LinkParams, length_km: float | None = None,
                  mu: float | None = None) -> float:
    """GLLP rate without decoys: every multi-photon pulse assumed tagged (GLLP 2004)."""
    eta = transmittance(params, length_km)
    m = params.mu if mu is None else mu
    q_mu = gain(params, m, eta)
    e_mu = error_gain(params, m, eta) / q_mu
    omega = 1.0 - (1.0 - (1.0 + m) * np.exp(-m)) / q_mu
    if omega <= 0.0 or e_mu / omega >= 0.5:
        return 0.0
    return gllp_rate(sifting_factor(params), params.ec_efficiency, q_mu, e_mu,
                     q_mu * omega, e_mu / omega)


def plob_bound(params: LinkParams, length_km: float | None = None) -> float:
    """Repeaterless PLOB bound -log2(1 - eta) in bits per pulse (Pirandola et al. 2017)."""
    return float(-np.log2(1.0 - transmittance(params, length_km)))


def optimal_rate(rate_fn, params: LinkParams, length_km: float) -> tuple[float, float]:
    """Maximise ``rate_fn(params, length_km, mu=...)`` over mu; returns (rate, mu).

    A log-spaced grid first (the clipped rate is flat zero over most of the range,
    which defeats a local optimiser), then a bounded refinement around the best point.
    """
    grid = np.geomspace(1e-4, 1.5, 200)
    rates = np.array([rate_fn(params, length_km, mu=m) for m in grid])
    best = int(np.argmax(rates))
    if rates[best] <= 0.0:
        return 0.0, float(grid[best])
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda m: -rate_fn(params, length_km, mu=m),
                                   bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    return (-float(res.fun), float(res.x)) if -res.fun >= rates[best] else (float(rates[best]), float(grid[best]))


def max_distance_km(rate_fn, params: LinkParams, hi_km: float = 400.0) -> float:
    """Largest length with positive rate, by bisection to 0.01 km (rate_fn(params, L))."""
    lo, hi = 0.0, hi_km
    if rate_fn(params, lo) <= 0.0:
        return 0.0
    while hi - lo > 0.01:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate_fn(params, mid) > 0.0 else (lo, mid)
    return lo
