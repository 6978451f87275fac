"""Monte Carlo of an entanglement-based link: pulses, coincidences, bases, CHSH subset.

Two samplers follow the same law:

* :func:`sample_pulses` (the reference, cost ~ pulses): per pump pulse the two thermal
  modes' photon numbers n1, n2 (geometric, mean lam each); in any basis matching
  Alice's, n1 photons go to her detector 0 and Bob's detector 1, n2 to her detector 1
  and his detector 0 (the singlet's anti-correlation, undone by Bob's bit flip).  Each
  detector fires if one of its photons survives (probability 1 - (1-eta)^n) or a
  background click comes; a double click gives a random bit.  Noise: with probability
  1 - V (1 - f_eve/2) Bob's bit is replaced by a random one.  Built from the physics
  alone, it is what the closed form of :mod:`bbm92_model` is tested against.
* :func:`sample_coincidences` (cost ~ coincidences): the number of coincidences is
  Binomial(pulses, Q), each an error with probability E (closed form); then every
  coincidence is assigned to the CHSH subset or to a basis pair.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from adapters.quantum_internet.bbm92_model import Bbm92Params, arm_transmittances, gain, qber

CHUNK_PULSES = 1 << 20
#: CHSH settings (Alice, Bob) in radians, and the sign of each correlation in S.
CHSH_SETTINGS = ((0.0, math.pi / 8), (0.0, -math.pi / 8), (math.pi / 4, math.pi / 8), (math.pi / 4, -math.pi / 8))
CHSH_SIGNS = np.array([1.0, 1.0, 1.0, -1.0])


@dataclasses.dataclass(frozen=True)
class PulseTally:
    """Counts of the reference sampler (every coincidence measured in matching bases)."""

    pulses: int
    coincidences: int
    errors: int


@dataclasses.dataclass(frozen=True)
class Coincidences:
    """One frame's coincidences: the key and phase-test bits of each side, CHSH counts."""

    pulses: int
    alice_key: np.ndarray = dataclasses.field(repr=False)
    bob_key: np.ndarray = dataclasses.field(repr=False)
    x_pairs: int
    x_errors: int
    chsh_trials: np.ndarray
    chsh_agreements: np.ndarray

    @property
    def coincidences_total(self) -> int:
        return int(self.alice_key.size + self.x_pairs + self.chsh_trials.sum())


def _fires(rng, photons: np.ndarray, eta: float, background: float) -> np.ndarray:
    return (rng.random(photons.size) < 1.0 - (1.0 - eta) ** photons) | (rng.random(photons.size) < background)


def _bit(rng, zero: np.ndarray, one: np.ndarray) -> np.ndarray:
    """Detector 0 alone -> 0, detector 1 alone -> 1, both -> random."""
    return np.where(zero & one, rng.integers(0, 2, zero.size, dtype=np.int8), one.astype(np.int8))


def _chunk(params: Bbm92Params, size: int, rng: np.random.Generator, eve_fraction: float) -> tuple[int, int]:
    eta_a, eta_b = arm_transmittances(params)
    d = 1.0 - math.sqrt(1.0 - params.background_prob)  # per detector
    p = 1.0 / (1.0 + params.lam)
    n1, n2 = rng.geometric(p, size) - 1, rng.geometric(p, size) - 1
    a0, a1 = _fires(rng, n1, eta_a, d), _fires(rng, n2, eta_a, d)
    b1, b0 = _fires(rng, n1, eta_b, d), _fires(rng, n2, eta_b, d)
    both = (a0 | a1) & (b0 | b1)
    alice, bob = _bit(rng, a0[both], a1[both]), _bit(rng, b1[both], b0[both])
    noisy = rng.random(alice.size) >= params.visibility * (1.0 - eve_fraction / 2.0)
    bob = np.where(noisy, rng.integers(0, 2, alice.size, dtype=np.int8), bob)
    return int(both.sum()), int(np.count_nonzero(alice != bob))


def sample_pulses(params: Bbm92Params, pulses: int, rng: np.random.Generator, eve_fraction: float = 0.0) -> PulseTally:
    """Reference sampler: every pulse, in chunks (no loop per photon)."""
    coincidences = errors = 0
    for start in range(0, pulses, CHUNK_PULSES):
        c, e = _chunk(params, min(CHUNK_PULSES, pulses - start), rng, eve_fraction)
        coincidences, errors = coincidences + c, errors + e
    return PulseTally(pulses, coincidences, errors)


def sample_coincidences(params: Bbm92Params, pulses: int, rng: np.random.Generator,
                        eve_fraction: float = 0.0) -> Coincidences:
    """Event sampler: coincidences from the closed form, split into key, X test and CHSH."""
    count = int(rng.binomial(pulses, gain(params)))
    e = qber(params, eve_fraction)
    z, chsh = params.p_z, params.chsh_fraction
    basis = (1.0 - chsh) * np.array([z * z, (1.0 - z) ** 2, 2.0 * z * (1.0 - z)])
    key_n, x_n, _, chsh_n = rng.multinomial(count, [*basis, chsh])
    alice = rng.integers(0, 2, key_n, dtype=np.uint8)
    bob = alice ^ (rng.random(key_n) < e).astype(np.uint8)
    trials = rng.multinomial(chsh_n, [0.25] * 4)
    correlation = (1.0 - 2.0 * e) * np.cos([2.0 * (a - b) for a, b in CHSH_SETTINGS])
    agreements = rng.binomial(trials, (1.0 + correlation) / 2.0)
    return Coincidences(pulses, alice, bob, int(x_n), int(rng.binomial(x_n, e)), trials, agreements)


def chsh_estimate(trials: np.ndarray, agreements: np.ndarray) -> tuple[float, float]:
    """(S, its standard error) from the four settings' counts; (nan, inf) if a setting has none."""
    if np.any(trials == 0):
        return float("nan"), float("inf")
    correlations = (2.0 * agreements - trials) / trials
    s = float(np.sum(CHSH_SIGNS * correlations))
    return s, float(math.sqrt(np.sum((1.0 - correlations ** 2) / trials)))
