"""A mock device's configuration file (YAML), validated into immutable settings.

``qkms init --link-source mock-device`` writes one per device; tests write their own.
Relative paths resolve against the file's directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kms.config import describe_validation_error
from kms.errors import ConfigError
from kms.ids import ENTITY_ID_PATTERN


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Address(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


class TlsFiles(_Frozen):
    cert: Path
    key: Path
    ca: Path


class MockSae(_Frozen):
    """An SAE of this device: its id and the subject CN of its certificate (default: the id)."""

    id: str = Field(min_length=1, max_length=256)
    identity: str | None = Field(None, min_length=1, max_length=256)


class MockLimits(_Frozen):
    """What the device's ETSI 014 status announces and enforces (sizes in bits)."""

    key_size_bits: int = Field(256, gt=0, multiple_of=8)
    min_key_size_bits: int = Field(64, gt=0, multiple_of=8)
    max_key_size_bits: int = Field(8192, gt=0, multiple_of=8)
    max_keys_per_request: int = Field(128, ge=1, le=10000)
    max_key_count: int = Field(100000, ge=1)
    max_sae_id_count: int = Field(0, ge=0, le=64)

    @model_validator(mode="after")
    def _ordered(self) -> "MockLimits":
        if not self.min_key_size_bits <= self.key_size_bits <= self.max_key_size_bits:
            raise ValueError("need min_key_size_bits <= key_size_bits <= max_key_size_bits")
        return self


class MockDeviceConfig(_Frozen):
    """One device of a pair. ``name`` is its KME_ID and the subject CN of its
    certificate; its peer is ``peer_name`` at ``peer_url``."""

    name: str = Field(pattern=ENTITY_ID_PATTERN)
    peer_name: str = Field(pattern=ENTITY_ID_PATTERN)
    link_id: str = Field(pattern=ENTITY_ID_PATTERN)
    listen: Address
    control_listen: Address
    tls: TlsFiles
    peer_url: str = Field(pattern=r"^https://")
    saes: tuple[MockSae, ...] = Field(min_length=1)
    peer_saes: tuple[str, ...] = Field(min_length=1)
    control_identities: tuple[str, ...] = ("qkms-operator",)
    #: The simulated link's section (``adapters.qkd_sim.source_config``), seed_file included.
    simulation: dict[str, Any]
    limits: MockLimits = MockLimits()
    reservation_ttl_s: int = Field(300, ge=1)
    #: ETSI 004 push mode: the KMS endpoint this device pushes key material to, and the
    #: name the KMS's certificate carries (default: the URL's host).
    push_url: str | None = Field(None, pattern=r"^https://")
    push_server_name: str | None = None
    faults: tuple[str, ...] = ()
    #: Stop producing after this many simulated frames (conformance tests: fixed counts).
    max_frames: int | None = Field(None, ge=1)

    def resolved(self, base: Path) -> "MockDeviceConfig":
        def at(path: Path) -> Path:
            return path if path.is_absolute() else base / path
        tls = TlsFiles(cert=at(self.tls.cert), key=at(self.tls.key), ca=at(self.tls.ca))
        simulation = dict(self.simulation)
        if simulation.get("seed_file"):
            simulation["seed_file"] = str(at(Path(simulation["seed_file"])))
        return self.model_copy(update={"tls": tls, "simulation": simulation})


def load_mock_config(path: Path | str) -> MockDeviceConfig:
    """Read and validate a mock device's YAML file; ConfigError naming the bad setting."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    try:
        return MockDeviceConfig.model_validate(data).resolved(path.parent.resolve())
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
