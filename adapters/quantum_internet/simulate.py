"""``qkms simulate --protocol bbm92 | repeater-chain``: one run, as a JSON-ready dict.

The runners named in :data:`adapters.qkd_sim.protocols.PROTOCOLS`; they take a
:class:`SimulationRequest` (the command's options) and return plain figures, never
key material.
"""

from __future__ import annotations

import dataclasses
import math

from adapters.quantum_internet.bbm92 import run_bbm92
from adapters.quantum_internet.bbm92_model import Bbm92Params, chsh_value, protocol_sifting_factor, qber
from adapters.quantum_internet.repeater import ChainParams, simulate_chain

#: Eavesdroppers an entanglement-based link models (on Bob's arm).
BBM92_ATTACKS = ("intercept-resend",)


@dataclasses.dataclass(frozen=True)
class SimulationRequest:
    """The options of ``qkms simulate`` that these protocols read."""

    length_km: float
    pulses: int
    seed: int
    eve: str | None = None
    eve_fraction: float = 1.0
    segments: int = 8
    link_fidelity: float = 0.99
    memory_t2_s: float = 1.0
    rounds: int = 20_000
    memory_t1_s: float = math.inf


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def simulate_bbm92(request: SimulationRequest) -> dict:
    """A BBM92 run of ``pulses`` pump pulses (source in the middle, GYS fibre and detectors)."""
    if request.eve not in (None, *BBM92_ATTACKS):
        raise ValueError(f"--eve: the bbm92 link models {', '.join(BBM92_ATTACKS)} only")
    params = Bbm92Params(length_km=request.length_km)
    fraction = request.eve_fraction if request.eve else 0.0
    stats = run_bbm92(params, request.pulses, request.seed, fraction).stats
    expected_qber = qber(params, fraction)
    return {"protocol": "bbm92", **{k: _finite(v) if isinstance(v, float) else v for k, v in stats.as_dict().items()},
            "expected_qber": expected_qber, "expected_chsh_s": chsh_value(expected_qber),
            "sifting_factor": protocol_sifting_factor(params), "source_position": params.source_position,
            "mean_pairs_per_pulse": params.mean_pairs_per_pulse}


def simulate_repeater_chain(request: SimulationRequest) -> dict:
    """``rounds`` Monte Carlo rounds of a chain with the stated default hardware."""
    params = ChainParams(length_km=request.length_km, segments=request.segments,
                         link_fidelity=request.link_fidelity, memory_t2_s=request.memory_t2_s,
                         memory_t1_s=request.memory_t1_s)
    result = simulate_chain(params, request.rounds, request.seed)
    return {"protocol": "repeater-chain", "length_km": params.length_km, "segments": params.segments,
            "link_fidelity": params.link_fidelity, "memory_t2_s": params.memory_t2_s,
            "memory_t1_s": _finite(params.memory_t1_s), **result.as_dict()}
