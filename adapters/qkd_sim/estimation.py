"""Parameter estimation: QBER from a disclosed sample, decoy bounds, abort decisions.

QBER: by default (``pe_fraction`` 0) the error rate of the X-basis (test) coincidences,
which the decoy analysis discloses anyway, estimates the key's QBER for Cascade and
the abort check, as in Lim et al. 2014's protocol (step 4); the key's true error count
is learnt in reconciliation.  With ``pe_fraction`` > 0, Alice and Bob instead disclose
the same uniformly random fraction of the sifted Z bits and compare them; those bits are
then removed from the key (and the removal is charged as a worst case in
:func:`adapters.qkd_sim.finite_key.remove_disclosed`).

Decoy bounds use the Z/X detection and error counts per intensity, with Chernoff
fluctuations at eps_sec/21 (Lim et al., PRA 89, 022307 (2014)).  The asymptotic
Ma-et-al. estimate from the same counts is also computed, for comparison with the
analytic curve (it is *not* used to decide the key length).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from adapters.qkd_sim.analytic import gllp_rate, sifting_factor
from adapters.qkd_sim.decoy import (FiniteDecoyBounds, finite_decoy_bounds, tau,
                                    vacuum_weak_decoy_bounds)
from adapters.qkd_sim.finite_key import EPS_SPLIT
from adapters.qkd_sim.montecarlo import DetectionTally, SiftedKeys
from adapters.qkd_sim.params import LinkParams


@dataclasses.dataclass(frozen=True)
class QberSample:
    """Result of the disclosed comparison; ``keep`` indexes the bits left for the key."""

    qber: float
    sample_bits: int
    keep: np.ndarray


def estimate_qber(keys: SiftedKeys, tally: DetectionTally, fraction: float,
                  rng: np.random.Generator) -> QberSample:
    """The X-basis error rate (fraction 0), or a disclosed sample of the key (fraction > 0)."""
    if fraction > 0.0:
        return sample_qber(keys, fraction, rng)
    x_sifted = int(tally.sifted[:, 1].sum())
    qber = float(tally.errors[:, 1].sum()) / x_sifted if x_sifted else 1.0
    return QberSample(qber, 0, np.arange(keys.alice.size))


def sample_qber(keys: SiftedKeys, fraction: float, rng: np.random.Generator) -> QberSample:
    """Both parties disclose the same random positions; returns the observed error rate."""
    n = keys.alice.size
    size = min(n, max(1, math.ceil(fraction * n))) if n else 0
    chosen = np.zeros(n, bool)
    chosen[rng.choice(n, size, replace=False)] = True
    disclosed_by_alice = keys.alice[chosen]
    errors = int(np.count_nonzero(disclosed_by_alice != keys.bob[chosen]))
    return QberSample(errors / size if size else 1.0, size, np.flatnonzero(~chosen))


def finite_bounds(tally: DetectionTally, params: LinkParams) -> FiniteDecoyBounds:
    """Lim et al. 2014 bounds from the observed counts (signal, decoy, vacuum)."""
    return finite_decoy_bounds(tally.sifted[:, 0], tally.sifted[:, 1], tally.errors[:, 1],
                               params.intensities, params.intensity_probs,
                               params.eps_sec / EPS_SPLIT, params.deviation_bound)


def yield_and_error_bounds(bounds: FiniteDecoyBounds, tally: DetectionTally,
                           params: LinkParams) -> tuple[float, float]:
    """(Y1 lower, e1 upper) per pulse: s_Z1/(tau_1 N_ZZ) and v_X1/s_X1."""
    tau1 = tau(1, params.intensities, params.intensity_probs)
    n_zz = float(tally.sent_matched[:, 0].sum())
    y1 = bounds.s_z1 / (tau1 * n_zz) if n_zz else 0.0
    e1 = min(0.5, bounds.v_x1 / bounds.s_x1) if bounds.s_x1 > 0 else 0.5
    return y1, e1


def asymptotic_rate_from_counts(tally: DetectionTally, params: LinkParams) -> float:
    """Ma et al. 2005 vacuum + weak decoy rate evaluated on observed gains (no fluctuations)."""
    q_mu, q_nu, q_0 = tally.gains()
    e_mu, e_nu, _ = tally.error_rates()
    b = vacuum_weak_decoy_bounds(params.mu, params.nu, q_mu, q_nu, e_nu, q_0)
    q1 = b.y1_lower * params.mu * math.exp(-params.mu)
    return gllp_rate(sifting_factor(params), params.ec_efficiency, q_mu, e_mu, q1, b.e1_upper)


def qber_abort_reason(qber: float, params: LinkParams) -> str | None:
    """Human-readable reason when the sampled QBER is above the abort threshold."""
    if qber > params.qber_abort_threshold:
        return (f"QBER {qber:.1%} above abort threshold {params.qber_abort_threshold:.1%}: "
                "possible eavesdropper")
    return None
