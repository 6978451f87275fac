"""Decoy-state bounds on the single-photon yield Y1 and error rate e1.

Two versions, both *bounds* (never the true values):

* :func:`vacuum_weak_decoy_bounds` -- asymptotic, from gains: Ma, Qi, Zhao, Lo,
  PRA 72, 012326 (2005), eq. 34 (Y1^L) and eq. 37 (e1^U).
* :func:`finite_decoy_bounds` -- finite statistics from detection counts: the
  analytic bounds of Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014),
  eqs. 2-4 (s_{Z,0}, s_{Z,1}, v_{X,1}; intensities mu1 > mu2 + mu3, mu3 >= 0), with
  the expectations bounded by either of two concentration bounds (``bound``):
  ``"hoeffding"``, the paper's own, or (default) ``"chernoff"``:
  each count's expectation bounded by the multiplicative Chernoff bound (as in Curty,
  Xu, Cui, Lim, Tamaki, Lo, Nat. Commun. 5, 3732 (2014)) instead of Lim et al.'s
  Hoeffding deviation sqrt(n_Z/2 ln(1/eps)) on the *total*: that deviation swamps the
  few vacuum and decoy counts unless N >~ 10^10, while Chernoff scales with each
  count.  Counts are sums of independent Bernoulli trials given the photon-number
  detection events (i.i.d. source and attack), which is what Chernoff requires.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class DecoyBounds:
    """Lower bound on Y1 and upper bound on e1 (yield and error per pulse)."""

    y1_lower: float
    e1_upper: float


def vacuum_weak_decoy_bounds(mu: float, nu: float, q_mu: float, q_nu: float,
                             e_nu: float, y0: float) -> DecoyBounds:
    """Ma et al. 2005 eqs. 34 and 37 from gains Q, error rates E and vacuum yield Y0.

    Y1^L = mu/(mu nu - nu^2) (Q_nu e^nu - Q_mu e^mu nu^2/mu^2 - (mu^2-nu^2)/mu^2 Y0)
    e1^U = (E_nu Q_nu e^nu - Y0/2) / (Y1^L nu)
    """
    y1 = mu / (mu * nu - nu ** 2) * (
        q_nu * np.exp(nu) - q_mu * np.exp(mu) * nu ** 2 / mu ** 2
        - (mu ** 2 - nu ** 2) / mu ** 2 * y0)
    y1 = max(0.0, float(y1))
    if y1 <= 0.0:
        return DecoyBounds(0.0, 0.5)
    e1 = (e_nu * q_nu * np.exp(nu) - 0.5 * y0) / (y1 * nu)
    return DecoyBounds(y1, float(min(0.5, max(0.0, e1))))


def chernoff_expectation_bounds(observed: float, eps: float) -> tuple[float, float]:
    """Bounds on E[X] from an observed sum X of independent Bernoulli trials.

    Inverts the multiplicative Chernoff bounds (Mitzenmacher and Upfal, "Probability
    and Computing", Thms 4.4-4.5): P(X >= (1+d)E) <= exp(-d^2 E/(2+d)) and
    P(X <= (1-d)E) <= exp(-d^2 E/2).  With L = ln(1/eps) this gives
    E >= x + L/2 - sqrt(L^2/4 + 2 L x) and E <= x + L + sqrt(L^2 + 2 L x),
    each failing with probability at most eps.
    """
    x, big_l = float(observed), math.log(1.0 / eps)
    lower = x + big_l / 2.0 - math.sqrt(big_l ** 2 / 4.0 + 2.0 * big_l * x)
    upper = x + big_l + math.sqrt(big_l ** 2 + 2.0 * big_l * x)
    return max(0.0, lower), upper


def hoeffding_expectation_bounds(counts, eps: float) -> tuple[list[float], list[float]]:
    """Lim et al. 2014's deviation: every n_k within delta = sqrt(n/2 ln(1/eps)) of its
    expectation, n = sum_k n_k (Hoeffding, J. Am. Stat. Assoc. 58, 13 (1963))."""
    delta = math.sqrt(float(sum(counts)) / 2.0 * math.log(1.0 / eps))
    return [max(0.0, float(c) - delta) for c in counts], [float(c) + delta for c in counts]


def chernoff_bounds(counts, eps: float) -> tuple[list[float], list[float]]:
    """:func:`chernoff_expectation_bounds` applied to each count."""
    pairs = [chernoff_expectation_bounds(c, eps) for c in counts]
    return [lo for lo, _ in pairs], [hi for _, hi in pairs]


#: Concentration bounds by name: counts, eps -> (lower, upper) bounds on each expectation.
DEVIATIONS = {"chernoff": chernoff_bounds, "hoeffding": hoeffding_expectation_bounds}


def tau(n_photons: int, intensities, probs) -> float:
    """tau_n = sum_k p_k e^{-mu_k} mu_k^n / n!: probability of sending n photons."""
    return float(sum(p * math.exp(-m) * m ** n_photons / math.factorial(n_photons)
                     for m, p in zip(intensities, probs)))


def _scaled(counts, intensities, probs, eps: float, bound: str) -> tuple[list[float], list[float]]:
    """n^-_k and n^+_k = e^{mu_k}/p_k * (lower/upper bound on E[n_k])."""
    lower, upper = DEVIATIONS[bound](counts, eps)
    scale = [math.exp(m) / p for m, p in zip(intensities, probs)]
    return [s * x for s, x in zip(scale, lower)], [s * x for s, x in zip(scale, upper)]


def vacuum_events_lower(counts, intensities, probs, eps: float, bound: str = "chernoff") -> float:
    """s_0 >= tau_0 (mu2 n^-_{mu3} - mu3 n^+_{mu2}) / (mu2 - mu3)   (Lim et al. eq. 2)."""
    lo, hi = _scaled(counts, intensities, probs, eps, bound)
    _, m2, m3 = intensities
    s0 = tau(0, intensities, probs) * (m2 * lo[2] - m3 * hi[1]) / (m2 - m3)
    return max(0.0, s0)


def single_photon_events_lower(counts, intensities, probs, eps: float, bound: str = "chernoff") -> float:
    """s_1 lower bound, Lim et al. 2014 eq. 3 (uses the s_0 lower bound of eq. 2)."""
    lo, hi = _scaled(counts, intensities, probs, eps, bound)
    m1, m2, m3 = intensities
    t0, t1 = tau(0, intensities, probs), tau(1, intensities, probs)
    s0 = vacuum_events_lower(counts, intensities, probs, eps, bound)
    num = lo[1] - hi[2] - (m2 ** 2 - m3 ** 2) / m1 ** 2 * (hi[0] - s0 / t0)
    s1 = t1 * m1 * num / (m1 * (m2 - m3) - m2 ** 2 + m3 ** 2)
    return max(0.0, s1)


def single_photon_errors_upper(errors, intensities, probs, eps: float, bound: str = "chernoff") -> float:
    """v_1 <= tau_1 (m^+_{mu2} - m^-_{mu3}) / (mu2 - mu3)   (Lim et al. eq. 4)."""
    lo, hi = _scaled(errors, intensities, probs, eps, bound)
    _, m2, m3 = intensities
    return max(0.0, tau(1, intensities, probs) * (hi[1] - lo[2]) / (m2 - m3))


@dataclasses.dataclass(frozen=True)
class FiniteDecoyBounds:
    """Lim et al. 2014 bounds on event counts (not rates) in the Z and X bases."""

    s_z0: float
    s_z1: float
    s_x1: float
    v_x1: float


def finite_decoy_bounds(z_counts, x_counts, x_errors, intensities, probs,
                        eps: float, bound: str = "chernoff") -> FiniteDecoyBounds:
    """Apply Lim et al. eqs. 2-4 to per-intensity counts (signal, decoy, vacuum order)."""
    return FiniteDecoyBounds(
        s_z0=vacuum_events_lower(z_counts, intensities, probs, eps, bound),
        s_z1=single_photon_events_lower(z_counts, intensities, probs, eps, bound),
        s_x1=single_photon_events_lower(x_counts, intensities, probs, eps, bound),
        v_x1=single_photon_errors_upper(x_errors, intensities, probs, eps, bound))
