"""Event-level Monte Carlo: sample the gates where a detector fires, not every pulse.

Without the detectors' memory, gates are independent and identically distributed: a
gate's class c = (intensity, Alice's basis, Bob's basis) has prior p_k q_a q_b, and,
given c, the two detectors fire or not with probabilities that follow in closed form
from the channel's arrival modes (:meth:`HonestChannel.modes`: a mixture of photon
number laws G and the chance rho that a photon goes to the detector of Alice's bit):

    P(Alice's detector silent)  = (1 - p_d) G(1 - rho)
    P(the other silent)         = (1 - p_d) G(rho)
    P(both silent)              = (1 - p_d)^2 G(0)

(each photon chooses its detector independently, dark counts p_d per detector).  So the
gates where some detector fires raw form a Bernoulli process of rate
p_click = sum_c prior_c (1 - P(both silent | c)), sampled as geometric gaps, and each
such gate's (class, outcome) is an independent draw from prior_c P(outcome | c) /
p_click.  Alice's bit is uniform and names which physical detector is "hers".  Gates
without a raw click are only counted (a multinomial over their classes, conditioned on
no click), except the few where an after-pulse fires, whose class is drawn on its own.
The raw clicks then go through the same detector-memory scan as the pulse-level
sampler's (:mod:`adapters.qkd_sim.detector_memory`): dead time and after-pulses.

This is the same law as :mod:`adapters.qkd_sim.montecarlo` (tests compare the two
statistically), at a cost proportional to the detections instead of the pulses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numba
import numpy as np

from adapters.qkd_sim.channel import HonestChannel
from adapters.qkd_sim.detector_memory import DetectorState, register_clicks
from adapters.qkd_sim.montecarlo import N_INTENSITIES, DetectionTally, SiftedKeys
from adapters.qkd_sim.params import LinkParams

N_CLASSES = N_INTENSITIES * 4  # (intensity, Alice's basis, Bob's basis)
EVENTS_PER_CHUNK = 1 << 20
SILENT, MINE, OTHER, BOTH = range(4)  # raw outcome, relative to the detector of Alice's bit


@dataclasses.dataclass(frozen=True)
class GateLaw:
    """Class priors and, per class, P(silent, only Alice's detector, only the other, both)."""

    prior: np.ndarray
    outcome: np.ndarray

    @property
    def click_prob(self) -> float:
        """Probability that a gate has a raw click."""
        return float(self.prior @ (1.0 - self.outcome[:, SILENT]))

    def silent_classes(self) -> np.ndarray:
        """Class distribution of gates without a raw click."""
        w = self.prior * self.outcome[:, SILENT]
        return w / w.sum()

    def click_cells(self) -> np.ndarray:
        """Cumulative distribution over (class, outcome in MINE/OTHER/BOTH) of raw-click gates."""
        w = (self.prior[:, None] * self.outcome[:, MINE:]).ravel()
        cdf = np.cumsum(w / w.sum())
        cdf[-1] = 1.0
        return cdf


def class_index(k, a_basis, b_basis):
    """Class number of (intensity, Alice's basis, Bob's basis)."""
    return (k * 2 + a_basis) * 2 + b_basis


def _outcome(modes, dark: float) -> np.ndarray:
    silent_mine = sum(w * (1.0 - dark) * g(1.0 - rho) for w, g, rho in modes)
    silent_other = sum(w * (1.0 - dark) * g(rho) for w, g, rho in modes)
    silent = sum(w * (1.0 - dark) ** 2 * g(0.0) for w, g, rho in modes)
    return np.array([silent, silent_other - silent, silent_mine - silent,
                     1.0 - silent_mine - silent_other + silent])


def gate_law(params: LinkParams, channel: HonestChannel) -> GateLaw:
    """Priors and outcome probabilities of every class on this channel."""
    dark = 1.0 - math.sqrt(1.0 - params.dark_count_prob)
    basis = (params.p_z, 1.0 - params.p_z)
    prior, outcome = np.zeros(N_CLASSES), np.zeros((N_CLASSES, 4))
    for k, (mu, p_k) in enumerate(zip(params.intensities, params.intensity_probs)):
        for a in range(2):
            for b in range(2):
                c = class_index(k, a, b)
                prior[c] = p_k * basis[a] * basis[b]
                outcome[c] = np.clip(_outcome(channel.modes(mu, a == b), dark), 0.0, 1.0)
    return GateLaw(prior, outcome)


def _raw_gates(rng: np.random.Generator, size: int, p_click: float) -> np.ndarray:
    """Positions in [0, size) of a Bernoulli(p_click) process, by geometric gaps."""
    if p_click <= 0.0:
        return np.zeros(0, np.int64)
    parts, last = [], -1
    while True:
        batch = int((size - last) * p_click * 1.05) + 64
        pos = last + np.cumsum(rng.geometric(p_click, batch))
        parts.append(pos[pos < size])
        if pos[-1] >= size:
            return np.concatenate(parts)
        last = int(pos[-1])


class EventSampler:
    """Samples chunks of a frame event by event; keeps the detectors' memory between chunks."""

    def __init__(self, params: LinkParams, channel: HonestChannel):
        self.law = gate_law(params, channel)
        self.p_click = self.law.click_prob
        self.cells = self.law.click_cells()
        self.silent = self.law.silent_classes()
        self.dead_gates, self.afterpulse_prob = params.dead_time_gates, params.afterpulse_prob
        self.memory = DetectorState()

    def chunk_size(self) -> int:
        """Gates per chunk: about EVENTS_PER_CHUNK raw clicks."""
        return max(1 << 16, int(EVENTS_PER_CHUNK / max(self.p_click, 1e-12)))

    def sample(self, rng: np.random.Generator, first_gate: int, size: int) -> tuple[DetectionTally, np.ndarray, np.ndarray]:
        """Tally and sifted Z bits (Alice, Bob) of gates first_gate .. first_gate + size - 1."""
        gates = _raw_gates(rng, size, self.p_click)
        raw_class, raw_bit, d0, d1 = _raw_clicks(rng.random(gates.size), rng.integers(0, 2, gates.size, np.uint8),
                                                 self.cells)
        clicks = register_clicks(gates + first_gate, d0, d1, first_gate + size, self.dead_gates,
                                 self.afterpulse_prob, self.memory, rng)
        lone = np.flatnonzero(clicks.raw_index < 0)  # after-pulses in gates without a raw click
        lone_class = rng.choice(N_CLASSES, lone.size, p=self.silent)
        lone_bit = rng.integers(0, 2, lone.size, dtype=np.uint8)
        sent = (np.bincount(raw_class, minlength=N_CLASSES) + np.bincount(lone_class, minlength=N_CLASSES)
                + rng.multinomial(size - gates.size - lone.size, self.silent))
        double = rng.integers(0, 2, clicks.gates.size, dtype=np.uint8)  # Bob's bit for a double click
        sifted, errors, clicked, a_key, b_key = _tally(clicks.raw_index, raw_class, raw_bit, lone_class, lone_bit,
                                                       clicks.d0, clicks.d1, double)
        grid = sent.reshape(N_INTENSITIES, 2, 2)
        tally = DetectionTally(sent=grid.sum(axis=(1, 2)), clicked=clicked,
                               sent_matched=np.stack([grid[:, 0, 0], grid[:, 1, 1]], axis=1),
                               sifted=sifted, errors=errors)
        return tally, a_key, b_key


@numba.njit(cache=True, nogil=True)
def _raw_clicks(u, bits, cells):
    """(class, Alice's bit, detector 0 fired, detector 1 fired) of raw-click gates.

    ``cells`` is the CDF over (class, outcome MINE/OTHER/BOTH); Alice's detector is the
    one of her bit."""
    n = u.size
    cls = np.empty(n, np.int64)
    d0 = np.empty(n, np.bool_)
    d1 = np.empty(n, np.bool_)
    for i in range(n):
        cell = np.searchsorted(cells, u[i], side="right")
        outcome = cell % 3 + MINE
        cls[i] = cell // 3
        mine = outcome == MINE or outcome == BOTH
        other = outcome == OTHER or outcome == BOTH
        d0[i] = mine if bits[i] == 0 else other
        d1[i] = other if bits[i] == 0 else mine
    return cls, bits, d0, d1


@numba.njit(cache=True, nogil=True)
def _tally(raw_index, raw_class, raw_bit, lone_class, lone_bit, c0, c1, double):
    """Sifted and error counts per (intensity, basis), clicks per intensity, sifted Z bits."""
    sifted = np.zeros((N_INTENSITIES, 2), np.int64)
    errors = np.zeros((N_INTENSITIES, 2), np.int64)
    clicked = np.zeros(N_INTENSITIES, np.int64)
    a_key = np.empty(c0.size, np.uint8)
    b_key = np.empty(c0.size, np.uint8)
    n_key, n_lone = 0, 0
    for e in range(c0.size):
        if raw_index[e] >= 0:
            cls, a_bit = raw_class[raw_index[e]], raw_bit[raw_index[e]]
        else:
            cls, a_bit = lone_class[n_lone], lone_bit[n_lone]
            n_lone += 1
        k, a_basis, b_basis = cls // 4, (cls // 2) % 2, cls % 2
        b_bit = double[e] if (c0[e] and c1[e]) else np.uint8(1 if c1[e] else 0)
        clicked[k] += 1
        if a_basis == b_basis:
            sifted[k, a_basis] += 1
            if a_bit != b_bit:
                errors[k, a_basis] += 1
            if a_basis == 0:
                a_key[n_key], b_key[n_key] = a_bit, b_bit
                n_key += 1
    return sifted, errors, clicked, a_key[:n_key].copy(), b_key[:n_key].copy()


def simulate_events(params: LinkParams, pulses: int, rng: np.random.Generator, channel: HonestChannel,
                    progress: Callable[[int], None] | None = None) -> tuple[DetectionTally, SiftedKeys]:
    """Event-level counterpart of :func:`adapters.qkd_sim.montecarlo.simulate_pulses`."""
    sampler = EventSampler(params, channel)
    tally, alice_parts, bob_parts = DetectionTally(), [], []
    step = sampler.chunk_size()
    for start in range(0, pulses, step):
        size = min(step, pulses - start)
        chunk, a_bits, b_bits = sampler.sample(rng, start, size)
        tally.add(chunk)
        alice_parts.append(a_bits)
        bob_parts.append(b_bits)
        if progress is not None:
            progress(size)
    empty = np.zeros(0, np.uint8)
    return tally, SiftedKeys(np.concatenate(alice_parts or [empty]), np.concatenate(bob_parts or [empty]))
