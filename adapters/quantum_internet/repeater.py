"""A quantum repeater chain over time: N elementary links, memories, swapping.

Each elementary link (length L0 = L/N) makes heralded pairs: an attempt sends
``multiplexed_modes`` modes and lasts tau = max(L0/c, modes / repetition_rate) (photons
to the midpoint station and its herald back); a mode succeeds with probability
p1 = p_herald (eta_mem eta_det)^2 10^(-alpha L0 / 10), the attempt with
p = 1 - (1 - p1)^modes, leaving a Werner pair of fidelity ``link_fidelity``.  Optionally
one BBPSSW round purifies two such pairs into one (the first waits in memory for the
second; on failure both are lost).  The chain waits until every link holds a pair; a
pair older than the cut-off is dropped and regenerated.  Then all N - 1 repeater nodes
swap at once (deterministic, or linear optics succeeding with 1/2 each; one failure
loses the round).  Memories decay while a pair waits: amplitude damping (T1, infinite by
default) and loss of coherence (T2 in all, T2 <= 2 T1), :func:`bell_diagonal.store`; the
end nodes measure their qubits at once (BB84 needs no storage there) unless
purification holds them.

Monte Carlo: many independent rounds side by side (NumPy arrays trials x links); the
only Python loop is over cut-off regenerations, each vectorised over all rounds.
Renewal: pairs per second = delivered pairs / total round time.
Secret key: asymptotic BB84 on the delivered pairs, 1 - h(e_Z) - h(e_X) per pair
(sifting factor 1: efficient BB84 in the asymptotic limit, Lo, Chau, Ardehali 2005).
Repeaterless bound: PLOB, -log2(1 - eta_L) per channel use (Pirandola et al., Nat.
Commun. 8, 15043 (2017)) at the sources' repetition rate, eta_L the whole fibre's.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from adapters.qkd_sim.entropy import binary_entropy
from adapters.quantum_internet import bell_diagonal as bd

FIBRE_KM_PER_S = 2.0e5
SWAP_SUCCESS = {"deterministic": 1.0, "linear-optics": 0.5}
MAX_REGENERATIONS = 10_000


@dataclasses.dataclass(frozen=True)
class ChainParams:
    """Stated parameters of a chain (units in names); defaults are illustrative, not a device."""

    length_km: float = 500.0
    segments: int = 8
    link_fidelity: float = 0.99
    memory_t2_s: float = 1.0
    memory_t1_s: float = math.inf
    cutoff_s: float = math.inf
    alpha_db_per_km: float = 0.2
    memory_efficiency: float = 0.9
    detector_efficiency: float = 0.9
    herald_success: float = 0.5
    swap: str = "deterministic"
    purify: bool = False
    repetition_rate_hz: float = 1e9
    multiplexed_modes: int = 100

    def __post_init__(self) -> None:
        checks = [("length_km", self.length_km > 0.0, "> 0"), ("segments", self.segments >= 1, ">= 1"),
                  ("link_fidelity", 0.25 <= self.link_fidelity <= 1.0, "in [0.25, 1]"),
                  ("memory_t2_s", self.memory_t2_s > 0.0, "> 0"),
                  ("memory_t1_s", self.memory_t1_s >= self.memory_t2_s / 2.0, "> 0 and >= memory_t2_s / 2"),
                  ("cutoff_s", self.cutoff_s > 0.0, "> 0"),
                  ("swap", self.swap in SWAP_SUCCESS, f"one of {sorted(SWAP_SUCCESS)}"),
                  ("multiplexed_modes", self.multiplexed_modes >= 1, ">= 1")]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name}: must be {rule} (got {getattr(self, name)!r})")

    @property
    def segment_km(self) -> float:
        return self.length_km / self.segments

    @property
    def attempt_s(self) -> float:
        """tau: one heralded attempt, light to the midpoint and the herald back."""
        return max(self.segment_km / FIBRE_KM_PER_S, self.multiplexed_modes / self.repetition_rate_hz)

    @property
    def mode_success(self) -> float:
        efficiency = (self.memory_efficiency * self.detector_efficiency) ** 2
        return self.herald_success * efficiency * 10.0 ** (-self.alpha_db_per_km * self.segment_km / 10.0)

    @property
    def attempt_success(self) -> float:
        return -math.expm1(self.multiplexed_modes * math.log1p(-self.mode_success))

    def replace(self, **changes) -> "ChainParams":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ChainResult:
    """End-to-end figures of a chain simulation."""

    rounds: int
    pairs: int
    elapsed_s: float
    fidelity: float
    qber_z: float
    qber_x: float
    secret_fraction: float
    plob_bits_per_s: float

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.elapsed_s

    @property
    def qber(self) -> float:
        """Mean of both bases' error rates (2(1-F)/3 for Werner pairs)."""
        return (self.qber_z + self.qber_x) / 2.0

    @property
    def secret_bits_per_s(self) -> float:
        return self.pairs_per_s * self.secret_fraction

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"pairs_per_s": self.pairs_per_s, "qber": self.qber,
                                           "secret_bits_per_s": self.secret_bits_per_s}


def plob_bits_per_s(params: ChainParams) -> float:
    """Repeaterless bound over the whole length at the sources' repetition rate."""
    eta = 10.0 ** (-params.alpha_db_per_km * params.length_km / 10.0)
    return params.repetition_rate_hz * -math.log2(1.0 - eta)


def secret_fraction(e_z: float, e_x: float) -> float:
    """Asymptotic BB84 bits per pair, 1 - h(e_Z) - h(e_X), clipped at 0."""
    return max(0.0, 1.0 - float(binary_entropy(e_z)) - float(binary_entropy(e_x)))


def _attempts(rng: np.random.Generator, p: float, shape) -> np.ndarray:
    return rng.geometric(p, shape).astype(float)


def generate_links(params: ChainParams, rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray]:
    """(seconds until each link holds a pair, that pair's state when made)."""
    if not params.purify:
        made = _attempts(rng, params.attempt_success, shape) * params.attempt_s
        return made, np.broadcast_to(bd.werner(params.link_fidelity), (*np.shape(made), 4)).copy()
    elapsed, fidelity = np.zeros(shape), np.empty(shape)
    todo = np.arange(elapsed.size)
    while todo.size:
        first, second = (_attempts(rng, params.attempt_success, todo.size) * params.attempt_s for _ in range(2))
        waited = bd.fidelity(_store(params, bd.werner(params.link_fidelity), second, second))
        success, purified = bd.bbpssw(waited, params.link_fidelity)
        ok = rng.random(todo.size) < success
        elapsed.flat[todo] += first + second
        fidelity.flat[todo[ok]] = purified[ok]
        todo = todo[~ok]
    return elapsed, bd.werner(fidelity)


def _wait_for_all(params: ChainParams, rng, made: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Regenerate pairs older than the cut-off until every link of a round holds a fresh
    one; returns each round's completion time (``made`` and ``states`` updated)."""
    for _ in range(MAX_REGENERATIONS):
        ready = made.max(axis=1)
        stale = ready[:, None] - made > params.cutoff_s
        if not stale.any():
            return ready
        again, fresh = generate_links(params, rng, np.count_nonzero(stale))
        made[stale] += params.cutoff_s + again
        states[stale] = fresh
    raise RuntimeError("cut-off too short: rounds never complete (raise cutoff_s)")


def _store(params: ChainParams, states: np.ndarray, stored_a_s, stored_b_s) -> np.ndarray:
    return bd.store(states, stored_a_s, stored_b_s, params.memory_t1_s, params.memory_t2_s)


def stored_qubits(params: ChainParams) -> np.ndarray:
    """Qubits of each link that wait in memory: inner nodes' always, end nodes' only
    when they purify (otherwise they measure at once)."""
    stored = np.full(params.segments, 2.0)
    if not params.purify:
        stored[0] -= 1.0
        stored[-1] -= 1.0
    return stored


def simulate_chain(params: ChainParams, rounds: int, seed: int) -> ChainResult:
    """Monte Carlo of ``rounds`` rounds of the chain."""
    rng = np.random.default_rng(seed)
    made, states = generate_links(params, rng, (rounds, params.segments))
    ready = _wait_for_all(params, rng, made, states)
    waited, stored = ready[:, None] - made, stored_qubits(params)
    states = _store(params, states, waited * (stored >= 1.0), waited * (stored >= 2.0))
    pair = states[:, 0]
    for link in range(1, params.segments):
        pair = bd.swap(pair, states[:, link])
    delivered = rng.random(rounds) < SWAP_SUCCESS[params.swap] ** (params.segments - 1)
    mean = pair[delivered].mean(axis=0) if delivered.any() else bd.werner(0.25)
    e_z, e_x = float(bd.qber_z(mean)), float(bd.qber_x(mean))
    return ChainResult(rounds, int(delivered.sum()), float(ready.sum()), float(bd.fidelity(mean)), e_z, e_x,
                       secret_fraction(e_z, e_x), plob_bits_per_s(params))
