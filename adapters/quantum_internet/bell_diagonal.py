"""Two-qubit Bell-diagonal states: what entanglement swapping, memory dephasing and
purification do to a shared pair.

A state is the probability vector of the Pauli error applied to one qubit of |Phi+>,
in the order ``PAULI_ORDER`` = (I, X, Z, Y) so that composing two errors is the XOR of
their indices (Y = XZ up to a phase).  The fidelity with |Phi+> is the first entry.

* Werner state of fidelity F: (F, (1-F)/3, (1-F)/3, (1-F)/3); Werner parameter
  w = (4F - 1)/3.
* Swapping two pairs with a perfect Bell measurement (Pauli frame corrected) leaves the
  composition of their errors: for Werner states F' = 1/4 + 3/4 w1 w2 (Duer, Briegel,
  Cirac, Zoller, PRA 59, 169 (1999)); equal fidelities give F' = 1/4 + 3/4 ((4F-1)/3)^2.
* Memory dephasing (T2): a qubit stored for t suffers Z with probability
  (1 - exp(-t/T2))/2; for a pair whose qubits wait t_a and t_b this is one Z with
  probability (1 - exp(-(t_a + t_b)/T2))/2, so |Phi+> decays as F = (1 + exp(-t/T2))/2.
* BB84 on the pair: Z-basis errors are X or Y (e_Z = p_X + p_Y), X-basis errors Z or Y
  (e_X = p_Z + p_Y); for a Werner state both are 2(1-F)/3.
* Purification (Bennett et al., PRL 76, 722 (1996), BBPSSW): two Werner pairs of
  fidelities F1, F2 (o_i = (1 - F_i)/3) give, with probability
  p = F1 F2 + F1 o2 + o1 F2 + 5 o1 o2, one of fidelity (F1 F2 + o1 o2) / p, twirled back
  to a Werner state (equal F: p = F^2 + 2F(1-F)/3 + 5((1-F)/3)^2).
"""

from __future__ import annotations

import numpy as np

PAULI_ORDER = ("I", "X", "Z", "Y")
_Z = 2  # index of Z: XOR with it applies a phase flip


def werner(fidelity: float | np.ndarray) -> np.ndarray:
    """Werner state(s) of the given fidelity with |Phi+>."""
    f = np.asarray(fidelity, dtype=float)
    other = (1.0 - f) / 3.0
    return np.stack([f, other, other, other], axis=-1)


def werner_parameter(fidelity: float | np.ndarray) -> float | np.ndarray:
    return (4.0 * np.asarray(fidelity) - 1.0) / 3.0


def werner_swap_fidelity(f1: float, f2: float) -> float:
    """Closed form of a swap of two Werner pairs: 1/4 + 3/4 w1 w2."""
    return 0.25 + 0.75 * werner_parameter(f1) * werner_parameter(f2)


def swap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pair left by a perfect Bell measurement on one qubit of ``a`` and one of ``b``."""
    index = np.arange(4)
    return sum(a[..., i, None] * b[..., index ^ i] for i in range(4))


def dephase(state: np.ndarray, stored_s: np.ndarray | float, t2_s: float) -> np.ndarray:
    """``state`` after its qubits spent ``stored_s`` qubit-seconds in memories of time T2."""
    if np.isinf(t2_s):
        return state
    flip = (0.5 * (1.0 - np.exp(-np.asarray(stored_s, dtype=float) / t2_s)))[..., None]
    return (1.0 - flip) * state + flip * state[..., np.arange(4) ^ _Z]


def amplitude_damp(state: np.ndarray, stored_a_s, stored_b_s, t1_s: float) -> np.ndarray:
    """The Bell-diagonal part of ``state`` after its qubits decayed (T1) for ``stored_a_s``
    and ``stored_b_s``: gamma = 1 - exp(-t/T1) each, populations P = p_I + p_Z (|00>, |11>)
    and Q = p_X + p_Y (|01>, |10>), coherences D = p_I - p_Z and E = p_X - p_Y scaled by
    r = sqrt((1 - gamma_a)(1 - gamma_b)) (derivation: docs/quantum-internet.md)."""
    g_a, g_b = (-np.expm1(-np.asarray(t, dtype=float) / t1_s)[..., None] for t in (stored_a_s, stored_b_s))
    p_i, p_x, p_z, p_y = (state[..., i:i + 1] for i in range(4))
    big, small = p_i + p_z, p_x + p_y
    same = (big * (2.0 - g_a - g_b + 2.0 * g_a * g_b) + small * (g_a + g_b)) / 4.0
    crossed = (small * (2.0 - g_a - g_b) + big * (g_a + g_b - 2.0 * g_a * g_b)) / 4.0
    r = np.sqrt((1.0 - g_a) * (1.0 - g_b)) / 2.0
    return np.concatenate([same + r * (p_i - p_z), crossed + r * (p_x - p_y),
                           same - r * (p_i - p_z), crossed - r * (p_x - p_y)], axis=-1)


def pure_dephasing_s(t1_s: float, t2_s: float) -> float:
    """T_phi of the dephasing beside amplitude damping that leaves coherences decaying
    as exp(-t/T2) in all: 1/T_phi = 1/T2 - 1/(2 T1) (needs T2 <= 2 T1)."""
    rate = 1.0 / t2_s - 0.5 / t1_s
    return np.inf if rate <= 0.0 else 1.0 / rate


def store(state: np.ndarray, stored_a_s, stored_b_s, t1_s: float, t2_s: float) -> np.ndarray:
    """``state`` after qubit A waited ``stored_a_s`` and qubit B ``stored_b_s`` in memories
    of times T1 (amplitude damping) and T2 (all decay of coherence, T2 <= 2 T1); with
    T1 infinite exactly :func:`dephase` over the qubit-seconds they waited."""
    stored_s = np.asarray(stored_a_s, dtype=float) + np.asarray(stored_b_s, dtype=float)
    if np.isinf(t1_s):
        return dephase(state, stored_s, t2_s)
    return dephase(amplitude_damp(state, stored_a_s, stored_b_s, t1_s), stored_s, pure_dephasing_s(t1_s, t2_s))


def fidelity(state: np.ndarray) -> np.ndarray | float:
    return state[..., 0]


def qber_z(state: np.ndarray) -> np.ndarray | float:
    """Error rate of Z-basis measurements on both qubits (X or Y errors)."""
    return state[..., 1] + state[..., 3]


def qber_x(state: np.ndarray) -> np.ndarray | float:
    """Error rate of X-basis measurements on both qubits (Z or Y errors)."""
    return state[..., 2] + state[..., 3]


def werner_qber(fidelity_value: float) -> float:
    """QBER of a Werner pair in either basis, 2(1 - F)/3."""
    return 2.0 * (1.0 - fidelity_value) / 3.0


def bbpssw(f1: np.ndarray | float, f2: np.ndarray | float) -> tuple[np.ndarray | float, np.ndarray | float]:
    """(success probability, output fidelity) of one BBPSSW round on Werner pairs F1, F2."""
    f1, f2 = np.asarray(f1, dtype=float), np.asarray(f2, dtype=float)
    o1, o2 = (1.0 - f1) / 3.0, (1.0 - f2) / 3.0
    success = f1 * f2 + f1 * o2 + o1 * f2 + 5.0 * o1 * o2
    return success, (f1 * f2 + o1 * o2) / success
