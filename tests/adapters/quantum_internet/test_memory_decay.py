"""Memories with T1 (amplitude damping) beside T2: the Bell-diagonal part of a stored
pair, checked against density matrices evolved with the channels' Kraus operators
(amplitude damping and phase damping, Nielsen & Chuang, Quantum Computation and Quantum
Information (2000), section 8.3.5-8.3.6), computed here independently in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.quantum_internet import bell_diagonal as bd

#: |Phi+>, |Psi+>, |Phi->, |Psi-> as columns: Pauli errors I, X, Z, Y on one qubit of |Phi+>.
BELL = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 1, 0, -1], [1, 0, -1, 0]]) / math.sqrt(2)


def kraus_amplitude_damping(kept: float) -> list[np.ndarray]:
    """Amplitude damping with gamma = 1 - ``kept``."""
    return [np.array([[1, 0], [0, math.sqrt(kept)]]), np.array([[0, math.sqrt(1 - kept)], [0, 0]])]


def kraus_phase_damping(kept: float) -> list[np.ndarray]:
    """Phase damping with lambda = 1 - ``kept``."""
    return [np.array([[1, 0], [0, math.sqrt(kept)]]), np.array([[0, 0], [0, math.sqrt(1 - kept)]])]


def on_qubit(rho: np.ndarray, kraus: list[np.ndarray], qubit: int) -> np.ndarray:
    ops = [np.kron(k, np.eye(2)) if qubit == 0 else np.kron(np.eye(2), k) for k in kraus]
    return sum(op @ rho @ op.conj().T for op in ops)


def memory(rho: np.ndarray, stored_s: float, qubit: int, t1_s: float, t2_s: float) -> np.ndarray:
    """One qubit kept ``stored_s``: amplitude damping, then phase damping that brings its
    coherence to exp(-t/T2) in all: sqrt(1 - gamma) sqrt(1 - lambda) = exp(-t/T2)."""
    damped = on_qubit(rho, kraus_amplitude_damping(math.exp(-stored_s / t1_s)), qubit)
    return on_qubit(damped, kraus_phase_damping(math.exp(-2 * stored_s / t2_s + stored_s / t1_s)), qubit)


def bell_diagonal_of(rho: np.ndarray) -> np.ndarray:
    return np.real(np.einsum("ib,ij,jb->b", BELL, rho, BELL))


def density_matrix(state: np.ndarray) -> np.ndarray:
    return BELL @ np.diag(state) @ BELL.T


def werner_fidelity_closed_form(f0: float, t_a: float, t_b: float, t1_s: float, t2_s: float) -> float:
    """F = (1 + g_a g_b + w e^(-s/T1)) / 4 + w e^(-s/T2) / 2, s = t_a + t_b, w = (4 F0 - 1) / 3."""
    w, s = (4 * f0 - 1) / 3, t_a + t_b
    g_a, g_b = 1 - math.exp(-t_a / t1_s), 1 - math.exp(-t_b / t1_s)
    return (1 + g_a * g_b + w * math.exp(-s / t1_s)) / 4 + w * math.exp(-s / t2_s) / 2


TIMES = [(0.0, 0.0), (0.1, 0.1), (0.5, 0.0), (0.3, 0.7), (2.0, 2.0), (10.0, 3.0)]


@pytest.mark.parametrize("t_a, t_b", TIMES)
@pytest.mark.parametrize("t1_s, t2_s", [(1.0, 1.0), (1.0, 2.0), (5.0, 0.5), (0.2, 0.1)])
@pytest.mark.parametrize("state", [bd.werner(0.97), bd.werner(1.0), np.array([0.8, 0.05, 0.1, 0.05])])
def test_stored_pair_matches_kraus_density_matrices(state, t_a, t_b, t1_s, t2_s):
    rho = memory(memory(density_matrix(state), t_a, 0, t1_s, t2_s), t_b, 1, t1_s, t2_s)
    expected = bell_diagonal_of(rho)
    got = bd.store(state, t_a, t_b, t1_s, t2_s)
    assert got == pytest.approx(expected, abs=1e-10)
    assert bd.qber_z(got) == pytest.approx(rho[1, 1] + rho[2, 2], abs=1e-10)  # |01>, |10>: Z outcomes differ


@pytest.mark.parametrize("t_a, t_b", TIMES)
@pytest.mark.parametrize("f0", [1.0, 0.95, 0.5])
def test_werner_fidelity_closed_form(f0, t_a, t_b):
    t1_s, t2_s = 1.5, 0.8
    rho = memory(memory(density_matrix(bd.werner(f0)), t_a, 0, t1_s, t2_s), t_b, 1, t1_s, t2_s)
    assert werner_fidelity_closed_form(f0, t_a, t_b, t1_s, t2_s) == pytest.approx(bell_diagonal_of(rho)[0], abs=1e-10)
    assert bd.fidelity(bd.store(bd.werner(f0), t_a, t_b, t1_s, t2_s)) == pytest.approx(bell_diagonal_of(rho)[0],
                                                                                      abs=1e-10)


def test_infinite_t1_is_exactly_todays_dephasing():
    states = bd.werner(np.linspace(0.5, 1.0, 7))
    t = np.linspace(0.0, 3.0, 7)
    assert np.array_equal(bd.store(states, t, t, math.inf, 1.3), bd.dephase(states, 2.0 * t, 1.3))
    assert np.array_equal(bd.store(states, t, 0.0 * t, math.inf, 1.3), bd.dephase(states, t, 1.3))


def test_pure_dephasing_time():
    assert bd.pure_dephasing_s(math.inf, 2.0) == 2.0
    assert bd.pure_dephasing_s(1.0, 2.0) == math.inf
    assert bd.pure_dephasing_s(1.0, 1.0) == pytest.approx(2.0)
