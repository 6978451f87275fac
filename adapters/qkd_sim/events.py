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
        cell = np.searchsorted(self.cells, rng.random(gates.size), side="right")
        raw_class, raw_outcome = cell // 3, cell % 3 + MINE
        raw_bit = rng.integers(0, 2, gates.size, dtype=np.uint8)
        mine = (raw_outcome == MINE) | (raw_outcome == BOTH)
        other = (raw_outcome == OTHER) | (raw_outcome == BOTH)
        d0, d1 = np.where(raw_bit == 0, mine, other), np.where(raw_bit == 0, other, mine)
        clicks = register_clicks(gates + first_gate, d0, d1, first_gate + size, self.dead_gates,
                                 self.afterpulse_prob, self.memory, rng)
        from_raw = clicks.raw_index >= 0
        lone = np.count_nonzero(~from_raw)
        cls = np.empty(clicks.gates.size, np.int64)
        bit = np.empty(clicks.gates.size, np.uint8)
        cls[from_raw], bit[from_raw] = raw_class[clicks.raw_index[from_raw]], raw_bit[clicks.raw_index[from_raw]]
        cls[~from_raw] = rng.choice(N_CLASSES, lone, p=self.silent)
        bit[~from_raw] = rng.integers(0, 2, lone, dtype=np.uint8)
        sent = (np.bincount(raw_class, minlength=N_CLASSES) + np.bincount(cls[~from_raw], minlength=N_CLASSES)
                + rng.multinomial(size - gates.size - lone, self.silent))
        return _tally(sent, cls, bit, clicks.d0, clicks.d1, rng)


def _tally(sent, cls, a_bit, c0, c1, rng) -> tuple[DetectionTally, np.ndarray, np.ndarray]:
    b_bit = c1.astype(np.uint8)
    double = np.flatnonzero(c0 & c1)
    b_bit[double] = rng.integers(0, 2, double.size, dtype=np.uint8)
    k, a_basis, b_basis = cls // 4, (cls // 2) % 2, cls % 2
    matched = a_basis == b_basis
    error = a_bit != b_bit
    grid = sent.reshape(N_INTENSITIES, 2, 2)
    sifted = np.zeros((N_INTENSITIES, 2), np.int64)
    errors = np.zeros((N_INTENSITIES, 2), np.int64)
    np.add.at(sifted, (k[matched], a_basis[matched]), 1)
    np.add.at(errors, (k[matched & error], a_basis[matched & error]), 1)
    tally = DetectionTally(sent=grid.sum(axis=(1, 2)), clicked=np.bincount(k, minlength=N_INTENSITIES),
                           sent_matched=np.stack([grid[:, 0, 0], grid[:, 1, 1]], axis=1),
                           sifted=sifted, errors=errors)
    key = matched & (a_basis == 0)
    return tally, a_bit[key], b_bit[key]


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
