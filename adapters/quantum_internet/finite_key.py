"""Finite-key length of entanglement-based BB84 (BBM92).

Tomamichel, Lim, Gisin, Renner, "Tight finite-key analysis for quantum cryptography",
Nat. Commun. 3, 634 (2012), eq. 2 with their sampling term:

    l = n (1 - h(e_X + mu)) - leak_EC - log2(2 / (eps_sec^2 eps_cor))
    mu = sqrt((n + k) / (n k) * (k + 1) / k * ln(2 / eps_sec))

n key bits (Z basis), k test bits measured in X with error rate e_X.  The source needs
no characterisation (it may be Eve's), which is why no decoy states appear.
"""

from __future__ import annotations

import math

from adapters.qkd_sim.entropy import binary_entropy


def sampling_deviation(n: int, k: int, eps_sec: float) -> float:
    """mu: how far the key's phase error may exceed the test's, except with prob ~eps_sec."""
    if n <= 0 or k <= 0:
        return 0.5
    return math.sqrt((n + k) / (n * k) * (k + 1) / k * math.log(2.0 / eps_sec))


def phase_error_upper(n: int, k: int, x_errors: int, eps_sec: float) -> float:
    """e_X + mu, capped at 1/2."""
    if k <= 0:
        return 0.5
    return min(0.5, x_errors / k + sampling_deviation(n, k, eps_sec))


def secret_length(n: int, k: int, x_errors: int, leak_ec_bits: int, eps_sec: float, eps_cor: float) -> int:
    """Secret bits extractable from ``n`` reconciled bits (0 if none)."""
    phase = phase_error_upper(n, k, x_errors, eps_sec)
    raw = n * (1.0 - binary_entropy(phase)) - leak_ec_bits - math.log2(2.0 / (eps_sec ** 2 * eps_cor))
    return max(0, math.floor(raw))
