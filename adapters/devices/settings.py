"""The config section of a device-fed link, validated once into immutable settings.

One section serves one link end. It may also describe both ends at once (a network
written in one file, the contract tests): settings under ``ends.<KME_ID>`` apply to
that end only and override the ones beside them. A profile (``profiles.PROFILES``)
gives the defaults it knows; the section overrides them; the rest are the defaults
below, each a setting, not sourced. Every error is a ConfigError naming the setting
relative to the section (``url: ...``, ``ends.KME-B.cert: file not found: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.devices.check import tag_bytes
from adapters.devices.profiles import DeviceProfile, Protocol, profile as find_profile
from kms.config import describe_validation_error
from kms.errors import ConfigError
from kms.sources import SourceContext

Role = Literal["master", "slave"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeviceSettings(_Frozen):
    """What every device-fed link end has (all defaults: settings, not sourced)."""

    profile: str
    url: str = Field(pattern=r"^https://[^/\s]+")
    cert: Path
    key: Path
    ca: Path
    #: The name the device's certificate must carry (default: the URL's host). Host
    #: name verification is never switched off.
    server_name: str | None = Field(None, min_length=1, max_length=253)
    #: Which end drives: "auto" makes the end whose KME_ID sorts first the master.
    role: Literal["auto", "master", "slave"] = "auto"
    poll_interval_s: float = Field(1.0, gt=0, le=3600)
    #: How often an end asks its device for its status when it has nothing else to ask
    #: (a full pool, the slave end), so an outage shows while no key is pulled.
    probe_interval_s: float = Field(5.0, gt=0, le=3600)
    timeout_s: float = Field(3.0, gt=0, le=120)
    slow_answer_s: float = Field(1.0, gt=0, le=120)
    target_pool_bits: int = Field(1 << 22, ge=8)
    max_queued_blocks: int = Field(16, ge=1, le=4096)
    backoff_initial_s: float = Field(0.5, gt=0, le=600)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    breaker_failures: int = Field(5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(15.0, gt=0, le=3600)
    health_window_s: float = Field(30.0, gt=0, le=86400)
    stall_after_s: float = Field(60.0, gt=0, le=86400)
    #: Probability that two different blocks pass the equality check (per block).
    eps_cor: float = Field(1e-15, gt=0, lt=1e-3)

    def resolve(self, data_dir: str | None) -> "DeviceSettings":
        """Relative TLS file paths resolved against the node's config directory."""
        base = Path(data_dir or ".")
        return self.model_copy(update={name: path if path.is_absolute() else base / path
                                       for name in ("cert", "key", "ca") for path in [getattr(self, name)]})

    @property
    def expected_name(self) -> str:
        return self.server_name or urlsplit(self.url).hostname or ""


class Etsi014Settings(DeviceSettings):
    """A device that is an ETSI 014 KME: this node is its SAE ``sae_id``; the node at
    the other end is the SAE ``peer_sae_id`` of the other device."""

    sae_id: str = Field(min_length=1, max_length=256)
    peer_sae_id: str = Field(min_length=1, max_length=256)
    key_size_bits: int = Field(gt=0, le=65536, multiple_of=8)
    keys_per_request: int = Field(ge=1, le=10000)
    enc_keys_method: Literal["GET", "POST"]
    dec_keys_method: Literal["GET", "POST"]
    keys_per_block: int = Field(32, ge=1, le=4096)
    #: A key_extension field holding the key's expiry (seconds since the epoch), if the
    #: device gives one: ETSI 014 defines none.
    expiry_field: str | None = Field(None, min_length=1, max_length=128)
    min_key_lifetime_s: float = Field(60.0, ge=0)
    #: Probe the device's status (probe_interval_s); off for a device that refuses it
    #: to the slave end's SAE.
    probe_status: bool = True

    @model_validator(mode="after")
    def _block_holds_a_tag(self) -> "Etsi014Settings":
        if self.keys_per_block * self.key_size_bits // 8 <= tag_bytes(self.eps_cor):
            raise ValueError("keys_per_block * key_size_bits must exceed the equality check's tag")
        if self.dec_keys_method == "GET" and self.keys_per_request != 1:
            raise ValueError("dec_keys_method GET fetches one key per request: set keys_per_request 1")
        return self


class Etsi004Settings(DeviceSettings):
    """A device that pushes key material (ETSI 004 push mode): chunks of
    ``key_chunk_size_bytes``, ``chunks_per_block`` of them per pool block."""

    key_chunk_size_bytes: int = Field(gt=0, le=1 << 20)
    ttl_s: int = Field(ge=1)
    chunks_per_block: int = Field(64, ge=1, le=65536)
    max_bps: int | None = Field(None, ge=1)
    min_bps: int | None = Field(None, ge=1)
    #: The URIs this end names itself and its peer by in open-connect.
    source_uri: str | None = None
    destination_uri: str | None = None
    #: How long the master waits for the slave end to receive a block's chunks.
    align_timeout_s: float = Field(10.0, gt=0, le=600)
    #: Pushed chunks a node keeps waiting for the master end (oldest dropped beyond).
    max_waiting_chunks: int = Field(8192, ge=1)

    @model_validator(mode="after")
    def _block_holds_a_tag(self) -> "Etsi004Settings":
        if self.key_chunk_size_bytes * self.chunks_per_block <= tag_bytes(self.eps_cor):
            raise ValueError("key_chunk_size_bytes * chunks_per_block must exceed the equality check's tag")
        return self


MODELS: dict[Protocol, type[DeviceSettings]] = {"etsi014": Etsi014Settings, "etsi004": Etsi004Settings}


def parse_settings(section: dict[str, Any], context: SourceContext, protocol: Protocol, kind: str,
                   default_profile: str) -> DeviceSettings:
    """This end's settings: profile defaults, the section, then ``ends.<KME_ID>``."""
    common = {k: v for k, v in section.items() if k != "ends"}
    ends = section.get("ends", {})
    if not isinstance(ends, dict) or not all(isinstance(v, dict) for v in ends.values()):
        raise ConfigError("ends: must map KME_IDs to settings")
    own = ends.get(context.kme_id, {})
    merged = {**common, **own}
    chosen = _profile(merged.get("profile", default_profile), protocol, kind, "profile" in own, context.kme_id)
    values = {**chosen.settings, **merged, "profile": chosen.name}
    try:
        settings = MODELS[protocol].model_validate(values)
    except ValidationError as exc:
        lines = describe_validation_error(exc, f"unknown setting for the {kind} source").split("; ")
        raise ConfigError("; ".join(_locate(line, own, context.kme_id) for line in lines)) from None
    return settings.resolve(context.data_dir)


def _profile(name: Any, protocol: Protocol, kind: str, from_end: bool, kme_id: str) -> DeviceProfile:
    where = f"ends.{kme_id}.profile" if from_end else "profile"
    try:
        chosen = find_profile(str(name))
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc.args[0]}") from None
    if chosen.protocol != protocol:
        raise ConfigError(f"{where}: {chosen.name!r} speaks {chosen.protocol}; the {kind} source speaks {protocol}")
    return chosen


def _locate(line: str, own: dict, kme_id: str) -> str:
    """Put a problem with a setting given under ``ends.<KME_ID>`` at that path."""
    field = line.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
    return f"ends.{kme_id}.{line}" if field in own else line


def check_files(settings: DeviceSettings) -> None:
    """ConfigError naming the setting if a TLS file cannot be read."""
    for name in ("cert", "key", "ca"):
        path = getattr(settings, name)
        if not path.is_file():
            raise ConfigError(f"{name}: file not found: {path}")


def resolve_role(settings: DeviceSettings, context: SourceContext) -> Role:
    """``master`` or ``slave``; "auto" makes the end whose KME_ID sorts first the master."""
    if not context.peer_kme_id:
        raise ConfigError("(section): a device-fed source serves a link; no peer KME given")
    if settings.role != "auto":
        return settings.role
    return "master" if context.kme_id < context.peer_kme_id else "slave"
