"""The key-source extension point: one contract for every producer of secret bits.

A key source feeds one link end (or, for a node's own CSPRNG, the node itself).
Sources are built by name from a plain factory map (:mod:`kms.source_registry`);
third parties add entry points in the ``qkms.key_sources`` group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from kms.keys import KeyBlock, Provenance

HealthState = Literal["up", "degraded", "down"]


@dataclass(frozen=True)
class SourceHealth:
    """A source's own view of itself: state, why, and figures worth graphing."""

    state: HealthState
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceContext:
    """What a source may need to know about where it runs."""

    kme_id: str
    peer_kme_id: str | None = None
    link_id: str | None = None
    data_dir: str | None = None


class KeySource(ABC):
    """A producer of secret bits shared by both ends of a link.

    Contract (checked by ``tests/kms/test_source_contract.py`` for every source):
    both ends obtain the same blocks, in the same order, under the same block ids;
    a source that cannot guarantee identical bits (an aborted QKD run) yields nothing.
    """

    kind: ClassVar[str]
    #: True when the source produces bits when asked (CSPRNG, PQC), False when it
    #: produces over time and the caller must buffer them in a pool (QKD).
    on_demand: ClassVar[bool]

    @classmethod
    @abstractmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "KeySource":
        """Build the source from its own config section; raise ConfigError naming the
        bad setting relative to the section (e.g. ``length_km: must be >= 0``)."""

    @abstractmethod
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        """Blocks ready now, totalling at most ``max_bits`` (possibly none).

        Never blocks for long. Every block is handed out once, whole-byte sized, with
        an id unique within this source.
        """

    @abstractmethod
    def health(self) -> SourceHealth:
        """Current state and its reason, e.g. QBER above the abort threshold."""

    @property
    @abstractmethod
    def provenance(self) -> Provenance:
        """What to record with keys made from this source's bits."""

    def start(self) -> None:
        """Begin producing (background sources start their worker here)."""

    def stop(self) -> None:
        """Stop producing; idempotent."""
