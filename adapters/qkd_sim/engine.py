"""Top-level engine: one simulated link run from pulses to two independent final keys.

    run = run_link(preset("gys", length_km=50), pulses=10**8, seed=1)
    run.stats.secret_bits, run.keys_match

Stages: Monte Carlo (:mod:`montecarlo`), QBER sample and decoy bounds
(:mod:`estimation`), Cascade + verification (:mod:`postprocessing`), finite-key length
(:mod:`finite_key`, Lim et al. 2014), Toeplitz privacy amplification.  Each stage can
abort with a human-readable reason.  Every random choice comes from
``numpy.random.SeedSequence(seed)``, so a seed fixes both keys bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import numpy as np

from adapters.qkd_sim.channel import EveSpec, make_channel
from adapters.qkd_sim.estimation import (asymptotic_rate_from_counts, finite_bounds,
                                         estimate_qber, qber_abort_reason, yield_and_error_bounds)
from adapters.qkd_sim.finite_key import secret_length
from adapters.qkd_sim.events import simulate_events
from adapters.qkd_sim.montecarlo import DetectionTally, simulate_pulses
from adapters.qkd_sim.errors import InvalidLinkParams
from adapters.qkd_sim.params import LinkParams
from adapters.qkd_sim.protocols import PROTOCOLS
from adapters.qkd_sim.toeplitz import ToeplitzHash
from adapters.qkd_sim.postprocessing import (privacy_amplification, reconcile_frames,
                                             split_frames)

Progress = Callable[[str, int, int], None]

#: Monte Carlo samplers by name: "events" samples only the detections (cost ~ clicks),
#: "pulses" every pulse (the reference; cost ~ pulses).  Both follow the same law.
SAMPLERS = {"events": simulate_events, "pulses": simulate_pulses}


class SecretRate:
    """What the statistics of every kind of run (decoy-state, entanglement-based) derive
    from their ``secret_bits`` and ``pulses``."""

    @property
    def secret_bits_per_pulse(self) -> float:
        """Final key bits per emitted pulse."""
        return self.secret_bits / self.pulses if self.pulses else 0.0

    def as_dict(self) -> dict:
        """JSON-ready dict, including the derived per-pulse rate."""
        return dataclasses.asdict(self) | {"secret_bits_per_pulse": self.secret_bits_per_pulse}


@dataclasses.dataclass(frozen=True)
class KeyRun:
    """A run's statistics and each party's final key (never printed: repr=False)."""

    stats: SecretRate
    alice_key: bytes = dataclasses.field(default=b"", repr=False)
    bob_key: bytes = dataclasses.field(default=b"", repr=False)

    @property
    def keys_match(self) -> bool:
        return keys_match(self.alice_key, self.bob_key)


@dataclasses.dataclass(frozen=True)
class LinkStats(SecretRate):
    """Everything measured in a run; contains no key material."""

    length_km: float
    pulses: int
    mu: float
    nu: float
    eve: str | None
    gains: tuple[float, float, float]
    error_rates: tuple[float, float, float]
    sifted_bits: int
    qber: float
    pe_sample_bits: int
    y1_lower: float
    e1_upper: float
    asymptotic_bits_per_pulse: float
    click_rate_hz: float = 0.0
    max_click_rate_hz: float = 0.0
    frames: int = 0
    frames_failed: int = 0
    reconciled_bits: int = 0
    corrected_qber: float = float("nan")
    leaked_ec_bits: int = 0
    reconciliation_efficiency: float = float("nan")
    phase_error_upper: float = 0.5
    secret_bits: int = 0
    aborted: bool = False
    abort_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class LinkRun(KeyRun):
    """A decoy-state link's run."""

    stats: LinkStats


def keys_match(alice_key: bytes, bob_key: bytes) -> bool:
    """Both keys present and equal, compared by SHA-256 digest (as the parties would over the wire)."""
    return bool(alice_key) and hashlib.sha256(alice_key).digest() == hashlib.sha256(bob_key).digest()


def _base_stats(params: LinkParams, pulses: int, eve: EveSpec | None,
                tally: DetectionTally, sifted: int) -> dict:
    return dict(length_km=params.length_km, pulses=pulses, mu=params.mu, nu=params.nu,
                eve=None if eve is None else f"{eve.kind}:{eve.fraction:g}",
                gains=tuple(map(float, tally.gains())),
                error_rates=tuple(map(float, tally.error_rates())), sifted_bits=sifted,
                asymptotic_bits_per_pulse=asymptotic_rate_from_counts(tally, params),
                click_rate_hz=float(tally.clicked.sum()) / pulses * params.pulse_rate_hz,
                max_click_rate_hz=max_click_rate_hz(params))


def max_click_rate_hz(params: LinkParams) -> float:
    """Bob's two detectors together, each firing at most once per dead time + one gate."""
    return 2.0 * params.pulse_rate_hz / (params.dead_time_gates + 1)


def run_link(params: LinkParams, pulses: int, seed: int, eve: EveSpec | None = None,
             progress: Progress | None = None, sampler: str = "events") -> LinkRun:
    """Simulate ``pulses`` pulses and post-process them into two independent keys."""
    if pulses <= 0:
        raise ValueError(f"pulses: must be > 0 (got {pulses})")
    if not PROTOCOLS[params.protocol].simulated:
        raise InvalidLinkParams(f"protocol: {params.protocol} has analytic rates only; simulate "
                                f"{[name for name, p in PROTOCOLS.items() if p.simulated]}")
    mc_rng, sample_rng, public_rng = (np.random.default_rng(s)
                                      for s in np.random.SeedSequence(seed).spawn(3))
    report = (lambda stage: (lambda n: progress(stage, n, pulses))) if progress else (lambda s: None)
    tally, keys = SAMPLERS[sampler](params, pulses, mc_rng, make_channel(params, eve), report("simulate"))
    sample = estimate_qber(keys, tally, params.pe_fraction, sample_rng)
    bounds = finite_bounds(tally, params)
    y1, e1 = yield_and_error_bounds(bounds, tally, params)
    stats = dict(_base_stats(params, pulses, eve, tally, keys.alice.size), qber=sample.qber,
                 pe_sample_bits=sample.sample_bits, y1_lower=y1, e1_upper=e1)
    reason = _pre_reconciliation_abort(sample, bounds, keys.alice.size, params)
    if reason:
        return LinkRun(LinkStats(**stats, aborted=True, abort_reason=reason))
    return _post_process(params, keys, sample, bounds, stats, public_rng, progress)


def _pre_reconciliation_abort(sample, bounds, sifted: int, params: LinkParams) -> str | None:
    if sifted < 2:
        return "no sifted key: too few detections for this length and pulse count"
    reason = qber_abort_reason(sample.qber, params)
    if reason:
        return reason
    if bounds.s_z1 <= 0.0:
        return ("decoy-state bound gives no single-photon detections (Y1 lower bound 0): "
                "cannot show security, possible photon-number-splitting attack or too few pulses")
    return None


def _post_process(params, keys, sample, bounds, stats, public_rng, progress) -> LinkRun:
    alice_frames = split_frames(keys.alice[sample.keep])
    bob_frames = split_frames(keys.bob[sample.keep])
    total = alice_frames.shape[0]
    report = (lambda n: progress("reconcile", n, total)) if progress else None
    rec = reconcile_frames(alice_frames, bob_frames, sample.qber, params.eps_cor, public_rng, report)
    dropped = keys.alice.size - rec.alice.size  # sample, remainder and failed frames
    length = secret_length(bounds, rec.leaked_bits, dropped, params.eps_sec, params.eps_cor)
    secret = (length.length_bits // 8) * 8
    stats |= dict(frames=rec.frames, frames_failed=rec.frames_failed, reconciled_bits=rec.alice.size,
                  corrected_qber=rec.corrected_qber, leaked_ec_bits=rec.leaked_bits,
                  reconciliation_efficiency=rec.efficiency, phase_error_upper=length.phase_error)
    if secret <= 0:
        reason = (f"finite-key bound gives no positive key: s_Z1 >= {length.s_z1:.0f}, "
                  f"phase error <= {length.phase_error:.1%}, EC leak {rec.leaked_bits} bits")
        return LinkRun(LinkStats(**stats, aborted=True, abort_reason=reason))
    seed = public_rng.integers(0, 2, rec.alice.size - 1, dtype=np.uint8)
    # The Toeplitz seed is public: its transform is computed once; each side still
    # hashes only its own reconciled key.
    pa = ToeplitzHash(seed, rec.alice.size - secret, secret)
    alice_key = privacy_amplification(rec.alice, pa, secret)
    bob_key = privacy_amplification(rec.bob, pa, secret)
    return LinkRun(LinkStats(**stats, secret_bits=secret), alice_key, bob_key)
