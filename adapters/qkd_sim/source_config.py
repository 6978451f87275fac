"""The ``simulated`` key source's own config section, validated once into immutable objects.

Every error is a :class:`kms.errors.ConfigError` whose message names the setting
relative to the section (``length_km: must be >= 0``, ``eve.fraction: ...``); the
caller prefixes the section's own path.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.qkd_sim.channel import EVE_MODELS, EveSpec
from adapters.qkd_sim.errors import InvalidLinkParams
from adapters.qkd_sim.params import LinkParams, preset
from kms.config import describe_validation_error
from kms.errors import ConfigError
from kms.sources import SourceContext

# GYS needs 2e8 pulses per frame before the finite-key bound of Lim et al. 2014 leaves
# a positive key at 10 km, and 3e8 (barely) at 25 km; see the module docs of source.py.
DEFAULT_PULSES_PER_FRAME = 400_000_000
DEFAULT_FRAME_INTERVAL_S = 120.0
MIN_SEED_FILE_BYTES = 16


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EveSettings(_Frozen):
    """An eavesdropper present from start-up (tests and demos)."""

    kind: str
    fraction: float = Field(1.0, gt=0.0, le=1.0)

    @field_validator("kind")
    @classmethod
    def _known_attack(cls, value: str) -> str:
        if value not in EVE_MODELS:
            raise ValueError(f"unknown attack {value!r}; choose one of {sorted(EVE_MODELS)}")
        return value

    def spec(self) -> EveSpec:
        return EveSpec(self.kind, self.fraction)


class SimulatedSourceSettings(_Frozen):
    """The section as written; see :class:`adapters.qkd_sim.source.SimulatedQkdSource`."""

    preset: str = "gys"
    length_km: float = Field(10.0, ge=0.0)
    mu: float | None = Field(None, gt=0.0)
    nu: float | None = Field(None, gt=0.0)
    pulses_per_frame: int = Field(DEFAULT_PULSES_PER_FRAME, ge=1, le=10**11)
    frame_interval_s: float = Field(DEFAULT_FRAME_INTERVAL_S, gt=0.0)
    seed_file: Path | None = None
    eve: EveSettings | None = None
    #: A file that, while it exists, switches an eavesdropper on from the next frame:
    #: JSON ``{"kind": ..., "fraction": ...}`` (demos and tests cut a link this way).
    eve_file: Path | None = None
    qber_alarm_margin: float = Field(0.02, gt=0.0, lt=0.5)
    max_queued_blocks: int = Field(64, ge=1)

    def link_params(self) -> LinkParams:
        """The engine's parameters: the preset with this section's overrides."""
        changes = {"length_km": self.length_km, "mu": self.mu, "nu": self.nu}
        try:
            return preset(self.preset, **{k: v for k, v in changes.items() if v is not None})
        except InvalidLinkParams as exc:  # its message already starts with the field name
            raise ConfigError(str(exc)) from None


def parse_settings(section: dict[str, Any]) -> SimulatedSourceSettings:
    """Validate the section; raises ConfigError naming the bad setting."""
    try:
        settings = SimulatedSourceSettings.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "unknown setting for the simulated source")) from None
    settings.link_params()
    return settings


def read_eve_file(path: Path) -> EveSpec | None:
    """The eavesdropper an eve file names, None while it does not exist; ValueError if
    it is not ``{"kind": ..., "fraction": ...}``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return EveSettings.model_validate_json(text).spec()
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def link_identity(context: SourceContext) -> tuple[str, str]:
    """(link_id, peer) of the link this end serves; both ends must derive the same id."""
    if not context.peer_kme_id:
        raise ConfigError("(section): the simulated source serves a link; no peer KME given")
    low, high = sorted((context.kme_id, context.peer_kme_id))
    return context.link_id or f"{low}--{high}", context.peer_kme_id


def shared_secret(settings: SimulatedSourceSettings, context: SourceContext, link_id: str) -> bytes:
    """The seed file's bytes, or (test/demo only) a public value derived from the link id."""
    if settings.seed_file is None:
        return b"qkms-simulated-public-seed|" + link_id.encode()
    path = settings.seed_file
    if not path.is_absolute() and context.data_dir:
        path = Path(context.data_dir) / path
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"seed_file: cannot read {path}: {exc.strerror}") from None
    if len(secret) < MIN_SEED_FILE_BYTES:
        raise ConfigError(f"seed_file: must hold at least {MIN_SEED_FILE_BYTES} bytes ({path})")
    return secret


def frame_seed(secret: bytes, link_id: str, index: int) -> int:
    """Seed of frame ``index``: HMAC-SHA256(secret, link_id | index), as a 256-bit integer."""
    message = f"qkms-simulated-frame|{link_id}|{index}".encode()
    return int.from_bytes(hmac.new(secret, message, hashlib.sha256).digest(), "big")
