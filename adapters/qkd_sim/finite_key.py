"""Finite-key secret length of decoy-state BB84.

Lim, Curty, Walenta, Xu, Zbinden, "Concise security bounds for practical decoy-state
quantum key distribution", PRA 89, 022307 (2014), eqs. 1 and 5:

    l = s_{Z,0} + s_{Z,1} (1 - h(phi_Z)) - lambda_EC - 6 log2(21/eps_sec) - log2(2/eps_cor)
    phi_Z <= v_{X,1}/s_{X,1} + gamma(eps_sec, v_{X,1}/s_{X,1}, s_{Z,1}, s_{X,1})
    gamma(a,b,c,d) = sqrt((c+d)(1-b)b/(c d ln2) * log2((c+d)/(c d (1-b) b) * 21^2/a^2))

Every concentration bound in the decoy estimates uses eps = eps_sec/21 (the 21 of
the paper's composition).  The PE sample disclosed from the Z key is handled in
:func:`remove_disclosed`: worst case, every disclosed bit was a vacuum or
single-photon event with no phase error.
"""

from __future__ import annotations

import dataclasses
import math

from adapters.qkd_sim.decoy import FiniteDecoyBounds
from adapters.qkd_sim.entropy import binary_entropy

EPS_SPLIT = 21.0  # number of epsilon terms in Lim et al. 2014's composition


def phase_error_gamma(eps_sec: float, ratio: float, s_z1: float, s_x1: float) -> float:
    """gamma(a, b, c, d) of Lim et al. 2014 (random-sampling correction to phi_Z)."""
    if s_z1 <= 0.0 or s_x1 <= 0.0 or ratio <= 0.0 or ratio >= 1.0:
        return 0.5
    c, d, b = s_z1, s_x1, ratio
    arg = (c + d) / (c * d * (1.0 - b) * b) * EPS_SPLIT ** 2 / eps_sec ** 2
    return math.sqrt((c + d) * (1.0 - b) * b / (c * d * math.log(2.0)) * math.log2(arg))


def phase_error_upper(bounds: FiniteDecoyBounds, eps_sec: float) -> float:
    """phi_Z upper bound (capped at 1/2) from the X-basis single-photon bounds."""
    if bounds.s_x1 <= 0.0 or bounds.s_z1 <= 0.0:
        return 0.5
    ratio = bounds.v_x1 / bounds.s_x1
    return min(0.5, ratio + phase_error_gamma(eps_sec, ratio, bounds.s_z1, bounds.s_x1))


def remove_disclosed(s0: float, s1: float, phi: float, disclosed_bits: float) -> tuple[float, float, float]:
    """Bounds left after disclosing a sample: removals hit s0 first, then s1 (worst case)."""
    s0_left = max(0.0, s0 - disclosed_bits)
    s1_left = max(0.0, s1 - max(0, disclosed_bits - s0))
    phi_left = 0.5 if s1_left <= 0.0 else min(0.5, phi * s1 / s1_left)
    return s0_left, s1_left, phi_left


def epsilon_cost_bits(eps_sec: float, eps_cor: float) -> float:
    """6 log2(21/eps_sec) + log2(2/eps_cor) (Lim et al. 2014 eq. 1)."""
    return 6.0 * math.log2(EPS_SPLIT / eps_sec) + math.log2(2.0 / eps_cor)


@dataclasses.dataclass(frozen=True)
class SecretLength:
    """Result of the finite-key bound; ``length_bits`` is 0 when no key is possible."""

    length_bits: int
    s_z0: float
    s_z1: float
    phase_error: float
    leak_ec_bits: int
    eps_cost_bits: float


def key_balance_bits(bounds: FiniteDecoyBounds, leak_ec_bits: float, disclosed_bits: float,
                     eps_sec: float, eps_cor: float) -> tuple[float, float]:
    """(entropy, cost) of Lim et al. 2014 eq. 1: s0 + s1 (1 - h(phi)) and lambda_EC + eps terms.

    The key length before rounding is entropy - cost (negative when there is none).
    """
    raw, _, _, _, cost = _length(bounds, leak_ec_bits, disclosed_bits, eps_sec, eps_cor)
    return raw + leak_ec_bits + cost, leak_ec_bits + cost


def _length(bounds, leak_ec_bits, disclosed_bits, eps_sec, eps_cor):
    phi = phase_error_upper(bounds, eps_sec)
    s0, s1, phi = remove_disclosed(bounds.s_z0, bounds.s_z1, phi, disclosed_bits)
    cost = epsilon_cost_bits(eps_sec, eps_cor)
    return s0 + s1 * (1.0 - binary_entropy(phi)) - leak_ec_bits - cost, s0, s1, phi, cost


def secret_length(bounds: FiniteDecoyBounds, leak_ec_bits: int, disclosed_bits: int,
                  eps_sec: float, eps_cor: float) -> SecretLength:
    """Lim et al. 2014 eq. 1 with the actually leaked EC bits and the disclosed sample."""
    raw, s0, s1, phi, cost = _length(bounds, leak_ec_bits, disclosed_bits, eps_sec, eps_cor)
    return SecretLength(max(0, math.floor(raw)), s0, s1, phi, leak_ec_bits, cost)
