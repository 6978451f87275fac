"""Config sections of the ``entangled``, ``repeater-chain`` and ``satellite`` key sources,
validated once into immutable objects; errors name the setting (``length_km: ...``).

Common settings: ``frame_interval_s`` (a frame of key per wall-clock slot of this
length), ``seed_file`` (the link's shared secret; without it, seeds derive from the
link id alone: tests and demos only), ``max_queued_blocks``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pathlib import Path

from adapters.quantum_internet.bbm92_model import Bbm92Params
from adapters.quantum_internet.pass_schedule import DEFAULT_PASS_INTERVAL_S
from adapters.quantum_internet.repeater import ChainParams
from adapters.quantum_internet.satellite import SatelliteParams
from kms.config import describe_validation_error
from kms.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    frame_interval_s: float = Field(1.0, gt=0.0)
    seed_file: Path | None = None
    max_queued_blocks: int = Field(64, ge=1)


class EntangledSettings(_Section):
    """BBM92 link: :class:`adapters.quantum_internet.bbm92_model.Bbm92Params` fields."""

    length_km: float = Field(10.0, ge=0.0)
    source_position: str = "middle"
    mean_pairs_per_pulse: float = Field(0.1, gt=0.0)
    visibility: float = Field(0.934, ge=0.0, le=1.0)
    detector_efficiency: float = Field(0.045, gt=0.0, le=1.0)
    dark_count_rate_hz: float = Field(850.0, ge=0.0)
    coincidence_window_s: float = Field(1e-9, gt=0.0)
    pulse_rate_hz: float = Field(1e9, gt=0.0)
    eve_fraction: float = Field(0.0, ge=0.0, le=1.0)

    def model(self) -> Bbm92Params:
        fields = self.model_dump(exclude={"frame_interval_s", "seed_file", "max_queued_blocks",
                                          "detector_efficiency", "eve_fraction"})
        return Bbm92Params(**fields, detector_efficiency_a=self.detector_efficiency,
                           detector_efficiency_b=self.detector_efficiency)


class RepeaterChainSettings(_Section):
    """Repeater chain: :class:`adapters.quantum_internet.repeater.ChainParams` fields."""

    length_km: float = Field(500.0, gt=0.0)
    segments: int = Field(8, ge=1)
    link_fidelity: float = Field(0.99, ge=0.25, le=1.0)
    memory_t2_s: float = Field(1.0, gt=0.0)
    memory_t1_s: float = Field(math.inf, gt=0.0)
    cutoff_s: float = Field(math.inf, gt=0.0)
    swap: str = "deterministic"
    purify: bool = False
    multiplexed_modes: int = Field(100, ge=1)
    rounds: int = Field(20_000, ge=100)

    def model(self) -> ChainParams:
        return ChainParams(**self.model_dump(exclude={"frame_interval_s", "seed_file", "max_queued_blocks", "rounds"}))


class SatelliteSettings(_Section):
    """Satellite downlinks: :class:`adapters.quantum_internet.satellite.SatelliteParams` fields."""

    altitude_km: float = Field(500.0, gt=0.0)
    divergence_urad: float = Field(10.0, gt=0.0)
    pointing_jitter_urad: float = Field(1.0, ge=0.0)
    receiver_aperture_m: float = Field(1.0, gt=0.0)
    zenith_transmittance: float = Field(0.8, gt=0.0, le=1.0)
    receiver_efficiency: float = Field(0.1, gt=0.0, le=1.0)
    min_elevation_deg: float = Field(10.0, ge=0.0, lt=90.0)
    pulse_rate_hz: float = Field(1e8, gt=0.0)
    pass_interval_s: float = Field(DEFAULT_PASS_INTERVAL_S, gt=0.0)
    pass_duration_s: float | None = Field(None, gt=0.0)
    pass_offset_s: float = Field(0.0, ge=0.0)

    def model(self) -> SatelliteParams:
        return SatelliteParams(**self.model_dump(exclude={"frame_interval_s", "seed_file", "max_queued_blocks"}))


def parse(settings_class: type[_Section], section: dict[str, Any], kind: str):
    """The validated section and its model parameters; ConfigError naming the setting."""
    try:
        settings = settings_class.model_validate(section)
        return settings, settings.model()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, f"unknown setting for the {kind} source")) from None
    except ValueError as exc:  # the model's own checks name their field
        raise ConfigError(str(exc)) from None
