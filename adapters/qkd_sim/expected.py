"""Expected detection counts of a frame and the finite-key length they give.

The optimiser's objective (and the "our own check" of issue 14): instead of sampling
a frame, take the *expected* counts per intensity, basis and error class and feed
them to the same finite-key bound the engine uses (Lim et al. 2014 with the chosen
deviation bound).  Lim, Curty, Walenta, Xu, Zbinden (PRA 89, 022307 (2014), Sec. IV)
evaluate their bound the same way.

Per pulse of intensity mu in matching bases, the photons reaching Bob are Poisson with
mean eta mu; each goes to the wrong detector with probability e_d, independently, so
the two detectors' photon counts are independent Poissons.  With dark counts p_d per
detector (1 - (1 - p_d)^2 = Y0):

    P(right fires) = 1 - (1 - p_d) exp(-eta mu (1 - e_d))
    P(wrong fires) = 1 - (1 - p_d) exp(-eta mu e_d)

a click is either, an error is "wrong only" or half of "both" (random bit; squashing).
This is exactly the law the pulse-level Monte Carlo samples.

After-pulses (``afterpulse``):

* ``"previous-gate"`` (the Monte Carlo's model): each click makes its detector fire
  again with ``afterpulse_prob`` in the first gate after its dead time, with a bit
  unrelated to the new pulse, so every gate sees an extra click probability
  ``afterpulse_prob`` times the mean click probability, erring half the time;
* ``"same-gate"``: Lim et al.'s model, R_k = D_k (1 + p_ap), errors + p_ap D_k / 2.

Dead time (non-paralysable, per detector, ``dead_time_gates`` = D): a detector clicking
with probability r per gate when live is live a fraction 1 / (1 + r D) of the gates
(renewal argument: a click, D dead gates, then on average 1/r gates to the next one),
so every count is scaled by that fraction.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from adapters.qkd_sim.analytic import transmittance
from adapters.qkd_sim.decoy import FiniteDecoyBounds, finite_decoy_bounds
from adapters.qkd_sim.entropy import binary_entropy
from adapters.qkd_sim.finite_key import EPS_SPLIT, key_balance_bits
from adapters.qkd_sim.params import LinkParams

AFTERPULSE_MODELS = ("previous-gate", "same-gate")


@dataclasses.dataclass(frozen=True)
class ExpectedCounts:
    """Expected sifted detections and errors per intensity, Z (key) and X (test) basis."""

    z_counts: np.ndarray
    z_errors: np.ndarray
    x_counts: np.ndarray
    x_errors: np.ndarray
    live_fraction: float

    @property
    def qber_z(self) -> float:
        """Expected error rate of the sifted key."""
        return float(self.z_errors.sum() / max(self.z_counts.sum(), 1e-300))


def click_and_error_probs(params: LinkParams, afterpulse: str = "previous-gate"
                          ) -> tuple[np.ndarray, np.ndarray, float]:
    """Per intensity: P(click) and P(error) of a matched-basis gate, and the live fraction."""
    if afterpulse not in AFTERPULSE_MODELS:
        raise ValueError(f"afterpulse: choose one of {AFTERPULSE_MODELS} (got {afterpulse!r})")
    eta = transmittance(params)
    mus = np.asarray(params.intensities)
    p_d = 1.0 - math.sqrt(1.0 - params.dark_count_prob)
    right = 1.0 - (1.0 - p_d) * np.exp(-eta * mus * (1.0 - params.misalignment_error))
    wrong = 1.0 - (1.0 - p_d) * np.exp(-eta * mus * params.misalignment_error)
    click = 1.0 - (1.0 - right) * (1.0 - wrong)
    error = wrong * (1.0 - right) + 0.5 * wrong * right
    probs = np.asarray(params.intensity_probs)
    if afterpulse == "same-gate":
        error, click = error + params.afterpulse_prob * click / 2.0, click * (1.0 + params.afterpulse_prob)
    else:
        extra = params.afterpulse_prob * float(probs @ (right + wrong))  # clicks per gate, both detectors
        error, click = error + 0.5 * extra * (1.0 - click), click + extra * (1.0 - click)
    per_detector = 0.5 * float(probs @ click)
    live = 1.0 / (1.0 + per_detector * params.dead_time_gates)
    return click * live, error * live, live


def expected_counts(params: LinkParams, pulses: float, afterpulse: str = "previous-gate") -> ExpectedCounts:
    """Expected counts of a frame of ``pulses`` pulses (signal, decoy, vacuum order)."""
    click, error, live = click_and_error_probs(params, afterpulse)
    sent = pulses * np.asarray(params.intensity_probs)
    zz, xx = params.p_z ** 2, (1.0 - params.p_z) ** 2
    return ExpectedCounts(sent * zz * click, sent * zz * error, sent * xx * click, sent * xx * error, live)


def expected_bounds(params: LinkParams, counts: ExpectedCounts, eps_sec: float | None = None) -> FiniteDecoyBounds:
    """Lim et al. 2014 bounds evaluated on expected counts."""
    eps = (params.eps_sec if eps_sec is None else eps_sec) / EPS_SPLIT
    return finite_decoy_bounds(counts.z_counts, counts.x_counts, counts.x_errors, params.intensities,
                               params.intensity_probs, eps, params.deviation_bound)


def expected_key_balance(params: LinkParams, counts: ExpectedCounts, disclosed_fraction: float | None = None,
                         eps_sec: float | None = None) -> tuple[float, float]:
    """(entropy, cost) in bits of a frame with these counts; the key is entropy - cost.

    Leakage: f(e) n_Z h(E_Z) for error correction (f = ``ec_efficiency``);
    ``disclosed_fraction`` of the sifted key (default ``pe_fraction``, as the engine's
    QBER sample) is charged as the engine charges it.
    """
    eps = params.eps_sec if eps_sec is None else eps_sec
    fraction = params.pe_fraction if disclosed_fraction is None else disclosed_fraction
    n_z = float(counts.z_counts.sum())
    disclosed = fraction * n_z
    leak = params.ec_efficiency * (n_z - disclosed) * float(binary_entropy(counts.qber_z))
    return key_balance_bits(expected_bounds(params, counts, eps), leak, disclosed, eps, params.eps_cor)


def expected_key_rate(params: LinkParams, pulses: float) -> float:
    """Expected finite-key bits per pulse of a frame of ``pulses`` pulses (0 if none)."""
    entropy, cost = expected_key_balance(params, expected_counts(params, pulses))
    return max(0.0, entropy - cost) / pulses


def key_rate_objective(entropy: float, cost: float, pulses: float) -> float:
    """What the optimiser maximises: the rate where positive, else how far from positive.

    Below threshold, (entropy / cost - 1) * 1e-12 < 0 rises towards 0 as the key
    approaches positivity and, unlike the negative length itself, does not reward
    shrinking every count (which makes the deficit smaller but the key no nearer).
    """
    if entropy > cost:
        return (entropy - cost) / pulses
    return (entropy / cost - 1.0) * 1e-12 if cost > 0 else -1e-12


def expected_objective(params: LinkParams, pulses: float) -> float:
    """:func:`key_rate_objective` of the expected counts of a frame of ``pulses``."""
    return key_rate_objective(*expected_key_balance(params, expected_counts(params, pulses)), pulses)
