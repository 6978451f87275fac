"""Repeater chains: Werner swapping, memory dephasing, and a chain against a small
calculation done here from the geometric law of heralded attempts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.quantum_internet import bell_diagonal as bd
from adapters.quantum_internet.repeater import ChainParams, plob_bits_per_s, simulate_chain


@pytest.mark.parametrize("f1, f2", [(1.0, 1.0), (0.99, 0.99), (0.9, 0.8), (0.7, 0.95), (0.25, 0.9)])
def test_werner_swap_matches_the_closed_form(f1: float, f2: float) -> None:
    w1, w2 = (4 * f1 - 1) / 3, (4 * f2 - 1) / 3
    swapped = bd.swap(bd.werner(f1), bd.werner(f2))
    assert swapped[0] == pytest.approx(0.25 + 0.75 * w1 * w2, abs=1e-12)
    assert np.allclose(swapped, bd.werner(swapped[0]))  # Werner stays Werner
    assert bd.qber_z(swapped) == pytest.approx(2 * (1 - swapped[0]) / 3)


@pytest.mark.parametrize("swaps", [1, 3, 7])
def test_repeated_equal_swaps(swaps: int) -> None:
    f = 0.97
    state = bd.werner(f)
    for _ in range(swaps):
        state = bd.swap(state, bd.werner(f))
    assert state[0] == pytest.approx(0.25 + 0.75 * ((4 * f - 1) / 3) ** (swaps + 1), abs=1e-12)
    if swaps == 1:
        assert state[0] == pytest.approx(0.25 + 0.75 * ((4 * f - 1) / 3) ** 2)


@pytest.mark.parametrize("stored_s, t2_s", [(0.0, 1.0), (0.1, 1.0), (1.0, 1.0), (5.0, 0.5)])
def test_memory_dephasing_decays_fidelity_with_t2(stored_s: float, t2_s: float) -> None:
    assert bd.fidelity(bd.dephase(bd.werner(1.0), stored_s, t2_s)) == pytest.approx((1 + math.exp(-stored_s / t2_s)) / 2)
    f, q = 0.95, (1 - math.exp(-stored_s / t2_s)) / 2
    dephased = bd.dephase(bd.werner(f), stored_s, t2_s)
    assert dephased[0] == pytest.approx((1 - q) * f + q * (1 - f) / 3)
    assert bd.qber_z(dephased) == pytest.approx(2 * (1 - f) / 3)  # Z errors do not flip Z outcomes


def test_bbpssw_gains_fidelity_above_one_half() -> None:
    success, out = bd.bbpssw(0.8, 0.8)
    assert out > 0.8 and 0 < success < 1
    assert bd.bbpssw(0.5, 0.5)[1] == pytest.approx(0.5)


def test_a_single_link_delivers_at_the_heralding_rate_without_storage() -> None:
    params = ChainParams(length_km=50.0, segments=1, link_fidelity=0.97, memory_t2_s=1e-6)
    result = simulate_chain(params, 50_000, seed=1)
    expected_rate = params.attempt_success / params.attempt_s  # one success per 1/p attempts
    assert result.pairs_per_s == pytest.approx(expected_rate, rel=0.02)
    assert result.fidelity == pytest.approx(0.97)  # both ends measure at once: no memory
    assert result.qber == pytest.approx(2 * (1 - 0.97) / 3)


@pytest.mark.parametrize("t1", [math.inf, 0.015])
def test_two_links_against_a_small_exact_calculation(t1: float) -> None:
    """Two links, deterministic swap: a round ends at max(G1, G2) attempts; the earlier
    pair's repeater-side qubit waits |G1 - G2| attempts, the end nodes measure at once.
    One qubit of a Werner pair stored t: F = (1 + w e^(-t/T1)) / 4 + w e^(-t/T2) / 2."""
    f, t2 = 0.98, 0.02
    params = ChainParams(length_km=200.0, segments=2, link_fidelity=f, memory_t2_s=t2, memory_t1_s=t1,
                         multiplexed_modes=1)
    p, tau = params.attempt_success, params.attempt_s
    mean_attempts = 2 / p - 1 / (1 - (1 - p) ** 2)  # E[max of two geometric(p)]
    k = np.arange(0, 20_000)
    gap = np.where(k == 0, p / (2 - p), 2 * p * (1 - p) ** k / (2 - p))  # law of |G1 - G2|
    o, w = (1 - f) / 3, (4 * f - 1) / 3
    waited_fidelity = (1 + w * np.exp(-k * tau / t1)) / 4 + w * np.exp(-k * tau / t2) / 2
    expected_fidelity = float(np.sum(gap * (o + waited_fidelity * (f - o))))
    result = simulate_chain(params, 60_000, seed=2)
    assert result.pairs_per_s == pytest.approx(1 / (mean_attempts * tau), rel=0.02)
    assert result.fidelity == pytest.approx(expected_fidelity, abs=0.003)
    assert expected_fidelity < bd.werner_swap_fidelity(f, f) - 0.01  # the memory mattered


def test_infinite_t1_reproduces_the_chain_before_t1_existed() -> None:
    """Figures of these chains (3000 rounds, seed 7) computed before memories had a T1."""
    plain, purified = (simulate_chain(ChainParams(purify=purify), 3000, seed=7) for purify in (False, True))
    assert (plain.fidelity, plain.qber_z, plain.qber_x) == (0.9221301936649765, 0.05090972036279315,
                                                            0.052414946153631826)
    assert (purified.fidelity, purified.qber_z, purified.qber_x) == (0.9440664575511049, 0.03542600440986204,
                                                                     0.0382205402439794)


def test_amplitude_damping_lowers_the_fidelity_and_is_validated() -> None:
    base = ChainParams(length_km=600.0, segments=4, memory_t2_s=0.05)
    dephased, damped = (simulate_chain(base.replace(memory_t1_s=t1), 5000, seed=8) for t1 in (math.inf, 0.03))
    assert damped.fidelity < dephased.fidelity and damped.pairs_per_s == dephased.pairs_per_s
    with pytest.raises(ValueError, match=r"^memory_t1_s: must be > 0 and >= memory_t2_s / 2"):
        base.replace(memory_t1_s=0.02)


def test_linear_optics_swaps_lose_half_the_rounds_each() -> None:
    base = ChainParams(length_km=300.0, segments=4)
    deterministic = simulate_chain(base, 40_000, seed=3)
    linear = simulate_chain(base.replace(swap="linear-optics"), 40_000, seed=3)
    assert linear.pairs_per_s == pytest.approx(deterministic.pairs_per_s / 8, rel=0.1)


def test_cutoff_trades_rate_for_fidelity() -> None:
    base = ChainParams(length_km=600.0, segments=4, memory_t2_s=0.05)  # ~0.02 s per link
    free, cut = simulate_chain(base, 20_000, seed=4), simulate_chain(base.replace(cutoff_s=0.02), 20_000, seed=4)
    assert cut.fidelity > free.fidelity and cut.pairs_per_s < free.pairs_per_s


def test_purification_raises_fidelity() -> None:
    base = ChainParams(length_km=300.0, segments=4, link_fidelity=0.95)
    plain, purified = simulate_chain(base, 20_000, seed=5), simulate_chain(base.replace(purify=True), 20_000, seed=5)
    assert purified.fidelity > plain.fidelity and purified.pairs_per_s < plain.pairs_per_s


def test_the_chain_beats_plob_far_away_but_not_nearby() -> None:
    near, far = (simulate_chain(ChainParams(length_km=length), 20_000, seed=6) for length in (100.0, 600.0))
    assert near.secret_bits_per_s < near.plob_bits_per_s
    assert far.secret_bits_per_s > far.plob_bits_per_s
    assert far.plob_bits_per_s == pytest.approx(1e9 * -math.log2(1 - 10 ** (-0.2 * 600 / 10)))
    assert plob_bits_per_s(ChainParams(length_km=100.0)) == near.plob_bits_per_s
