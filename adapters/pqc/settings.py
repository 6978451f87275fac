"""The ``ml-kem`` source's own config section, validated once into immutable objects.

Errors are ConfigErrors naming the setting relative to the section (``kem: ...``);
the caller prefixes the section's path (``links[0].pqc.``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.pqc.kem import DEFAULT_BACKEND, KemBackend, kem_backend
from adapters.pqc.signing import PinnedKey, SigningKey
from adapters.pqc.transcript import MAX_BLOCK_BYTES
from kms.config import describe_validation_error
from kms.errors import ConfigError
from kms.sources import SourceContext


class MlKemSettings(BaseModel):
    """The section as written (docs/pqc.md, config/README.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kem: str = "ML-KEM-768"
    backend: str = DEFAULT_BACKEND
    signature: Literal["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"] = "ML-DSA-65"
    signing_key: Path
    peer_public_key: Path
    block_bytes: int = Field(4096, ge=32, le=MAX_BLOCK_BYTES)
    blocks_per_s: float = Field(2.0, gt=0, le=10_000)
    max_queued_blocks: int = Field(256, ge=1, le=100_000)


@dataclass(frozen=True)
class MlKemLink:
    """Everything one end needs: settings, backend, its own key, the peer's pinned key,
    and who it is on which link."""

    settings: MlKemSettings
    backend: KemBackend
    signing_key: SigningKey
    peer_key: PinnedKey
    kme_id: str
    peer: str
    link_id: str

    @property
    def initiator(self) -> str:
        """The lower KME_ID starts every exchange."""
        return min(self.kme_id, self.peer)

    @property
    def is_initiator(self) -> bool:
        return self.kme_id == self.initiator


def _path(path: Path, context: SourceContext) -> Path:
    return path if path.is_absolute() or not context.data_dir else Path(context.data_dir) / path


def parse_link(section: dict[str, Any], context: SourceContext) -> MlKemLink:
    """Validate the section and load the keys; ConfigError naming the bad setting."""
    try:
        settings = MlKemSettings.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "unknown setting for the ml-kem source")) from None
    if not context.peer_kme_id or not context.link_id:
        raise ConfigError("(section): the ml-kem source serves a link; no peer KME given")
    backend = kem_backend(settings.backend)
    backend.require(settings.kem)
    signing_key = SigningKey.load(_path(settings.signing_key, context), settings.signature)
    peer_key = PinnedKey.load(_path(settings.peer_public_key, context), settings.signature)
    return MlKemLink(settings, backend, signing_key, peer_key, context.kme_id, context.peer_kme_id, context.link_id)
