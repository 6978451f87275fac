"""One run of an entanglement-based link, from pump pulses to two final keys.

    run = run_bbm92(Bbm92Params(length_km=50), pulses=10**9, seed=1)
    run.stats.chsh_s, run.stats.qber, run.keys_match

Stages: coincidences (:mod:`bbm92_sampling`), Bell test on the CHSH subset and the X
test sample, abort if S shows no violation or the QBER is above threshold, Cascade and
verification of the key bits (shared with the decoy-state link,
:mod:`adapters.qkd_sim.postprocessing`), finite-key length (:mod:`finite_key`),
Toeplitz privacy amplification.  A seed fixes both keys bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from adapters.qkd_sim.engine import KeyRun, SecretRate
from adapters.qkd_sim.postprocessing import privacy_amplification, reconcile_frames, split_frames
from adapters.qkd_sim.toeplitz import ToeplitzHash
from adapters.quantum_internet.bbm92_model import (CLASSICAL_CHSH_BOUND, Bbm92Params, asymptotic_rate,
                                                   protocol_sifting_factor)
from adapters.quantum_internet.bbm92_sampling import Coincidences, chsh_estimate, sample_coincidences
from adapters.quantum_internet.finite_key import phase_error_upper, secret_length


@dataclasses.dataclass(frozen=True)
class Bbm92Stats(SecretRate):
    """What a run measured; no key material."""

    length_km: float
    pulses: int
    eve: str | None
    coincidences: int
    sifted_bits: int
    qber: float
    x_test_bits: int
    chsh_s: float
    chsh_sigma: float
    chsh_trials: int
    asymptotic_bits_per_pulse: float
    phase_error_upper: float = 0.5
    leaked_ec_bits: int = 0
    secret_bits: int = 0
    aborted: bool = False
    abort_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Bbm92Run(KeyRun):
    """An entanglement-based link's run (each side's final key never shown in repr)."""

    stats: Bbm92Stats


def abort_reason(s: float, x_qber: float, sifted: int, params: Bbm92Params) -> str | None:
    """Why a run yields no key, before reconciliation; None if it may go on."""
    reasons = []
    if not s > CLASSICAL_CHSH_BOUND:
        shown = "unmeasured (too few CHSH coincidences)" if np.isnan(s) else f"{s:.2f}"
        reasons.append(f"Bell value S = {shown} does not exceed the classical bound 2: "
                       f"entanglement not certified, possible eavesdropper")
    if x_qber > params.qber_abort_threshold:
        reasons.append(f"QBER {x_qber:.1%} above abort threshold {params.qber_abort_threshold:.0%}")
    if sifted < 2:
        reasons.append("no sifted key: too few coincidences for this length and pulse count")
    return "; ".join(reasons) or None


def run_bbm92(params: Bbm92Params, pulses: int, seed: int, eve_fraction: float = 0.0) -> Bbm92Run:
    """Simulate ``pulses`` pump pulses and post-process into two independently made keys."""
    if pulses <= 0:
        raise ValueError(f"pulses: must be > 0 (got {pulses})")
    sample_rng, public_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    frame = sample_coincidences(params, pulses, sample_rng, eve_fraction)
    s, sigma = chsh_estimate(frame.chsh_trials, frame.chsh_agreements)
    x_qber = frame.x_errors / frame.x_pairs if frame.x_pairs else 0.5
    stats = dict(length_km=params.length_km, pulses=pulses,
                 eve=f"intercept-resend:{eve_fraction:g}" if eve_fraction else None,
                 coincidences=frame.coincidences_total, sifted_bits=int(frame.alice_key.size), qber=x_qber,
                 x_test_bits=frame.x_pairs, chsh_s=s, chsh_sigma=sigma, chsh_trials=int(frame.chsh_trials.sum()),
                 asymptotic_bits_per_pulse=asymptotic_rate(params, protocol_sifting_factor(params), eve_fraction))
    reason = abort_reason(s, x_qber, frame.alice_key.size, params)
    if reason:
        return Bbm92Run(Bbm92Stats(**stats, aborted=True, abort_reason=reason))
    return _post_process(params, frame, x_qber, stats, public_rng)


def _post_process(params: Bbm92Params, frame: Coincidences, x_qber: float, stats: dict,
                  public_rng: np.random.Generator) -> Bbm92Run:
    rec = reconcile_frames(split_frames(frame.alice_key), split_frames(frame.bob_key), x_qber,
                           params.eps_cor, public_rng)
    length = secret_length(rec.alice.size, frame.x_pairs, frame.x_errors, rec.leaked_bits,
                           params.eps_sec, params.eps_cor) // 8 * 8
    phase = phase_error_upper(rec.alice.size, frame.x_pairs, frame.x_errors, params.eps_sec)
    stats |= dict(phase_error_upper=phase, leaked_ec_bits=rec.leaked_bits)
    if length <= 0:
        reason = (f"finite-key bound gives no positive key: {rec.alice.size} reconciled bits, "
                  f"phase error <= {phase:.1%}, EC leak {rec.leaked_bits} bits")
        return Bbm92Run(Bbm92Stats(**stats, aborted=True, abort_reason=reason))
    pa = ToeplitzHash(public_rng.integers(0, 2, rec.alice.size - 1, dtype=np.uint8), rec.alice.size - length, length)
    return Bbm92Run(Bbm92Stats(**stats, secret_bits=length), privacy_amplification(rec.alice, pa, length),
                    privacy_amplification(rec.bob, pa, length))
