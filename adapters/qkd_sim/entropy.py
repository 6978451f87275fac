"""Binary entropy, the one information-theoretic function every bound uses."""

from __future__ import annotations

import numpy as np


def binary_entropy(p: float | np.ndarray) -> float | np.ndarray:
    """h(p) = -p log2 p - (1-p) log2(1-p), with h(0) = h(1) = 0; p outside [0,1] clipped."""
    q = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -q * np.log2(q) - (1.0 - q) * np.log2(1.0 - q)
    h = np.where((q <= 0.0) | (q >= 1.0), 0.0, h)
    return float(h) if np.ndim(h) == 0 else h
