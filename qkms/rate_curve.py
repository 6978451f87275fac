"""The rate-versus-distance curve of a simulated link, for the dashboard.

Computed once by the link manager (which loads the simulator anyway; the web workers
never do) from the link's own source settings: the asymptotic decoy-state key rate
of its preset and intensities (vacuum + weak decoy, Ma et al. 2005) and the
repeaterless PLOB bound -log2(1 - eta) (Pirandola et al. 2017) over fibre length, in
bits per pulse, with the link's own length marked. The dashboard adds the link's
measured finite-key rate at that length from its live metrics.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kms.config import LinkConfig
from kms.errors import QkmsError
from kms.telemetry import TelemetryStore

log = logging.getLogger("qkms.telemetry")

MAX_LENGTH_KM = 250.0
POINTS = 126


def rate_curve(section: dict[str, Any], max_length_km: float = MAX_LENGTH_KM, points: int = POINTS) \
        -> dict[str, Any] | None:
    """The curve of a ``simulated`` source section (None for any other kind)."""
    if section.get("kind") != "simulated":
        return None
    from adapters.qkd_sim import analytic
    from adapters.qkd_sim.source_config import parse_settings

    settings = parse_settings({k: v for k, v in section.items() if k != "kind"})
    params = settings.link_params()
    lengths = np.linspace(0.0, max_length_km, points)
    return {
        "preset": settings.preset,
        "length_km": settings.length_km,
        "mu": params.mu,
        "nu": params.nu,
        "pulse_rate_hz": params.pulse_rate_hz,
        "sifting_factor": analytic.sifting_factor(params),
        "lengths_km": [round(float(x), 3) for x in lengths],
        "decoy_bits_per_pulse": [analytic.vacuum_weak_decoy_rate(params, float(x)) for x in lengths],
        "plob_bits_per_pulse": [analytic.plob_bound(params, float(x)) for x in lengths],
        "decoy_max_km": analytic.max_distance_km(analytic.vacuum_weak_decoy_rate, params, max_length_km),
    }


def publish_rate_curves(links: list[LinkConfig], telemetry: TelemetryStore) -> int:
    """Store the curve of every simulated QKD source among ``links``; returns how many."""
    stored = 0
    for link in links:
        try:
            curve = rate_curve(link.source) if "qkd" in link.roles else None
            if curve is not None:
                telemetry.put_rate_curve(link.id, curve)
                stored += 1
        except (QkmsError, ValueError) as exc:
            log.warning("link %s: no rate-versus-distance curve: %s", link.id, getattr(exc, "message", exc))
    return stored
