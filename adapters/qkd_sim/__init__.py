"""Simulated decoy-state BB84 QKD link: physics, post-processing and analytic rates.

Public API for the key source::

    from adapters.qkd_sim import LinkParams, preset, run_link, EveSpec
    run = run_link(preset("gys", length_km=25), pulses=10**9, seed=7)
    run.stats  # LinkStats, no key material
    run.alice_key, run.bob_key, run.keys_match
"""

from adapters.qkd_sim.channel import EveSpec
from adapters.qkd_sim.engine import LinkRun, LinkStats, run_link
from adapters.qkd_sim.errors import InvalidLinkParams, QkdSimError
from adapters.qkd_sim.params import PRESETS, LinkParams, preset

__all__ = ["EveSpec", "InvalidLinkParams", "LinkParams", "LinkRun", "LinkStats", "PRESETS",
           "QkdSimError", "preset", "run_link"]
