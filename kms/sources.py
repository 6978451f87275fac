"""The key-source extension point: one contract for every producer of secret bits.

A key source feeds one link end (or, for a node's own CSPRNG, the node itself).
Sources are built by name from a plain factory map (:mod:`kms.source_registry`);
third parties add entry points in the ``qkms.key_sources`` group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from kms.errors import BadRequest
from kms.inbox import BlockInbox
from kms.keys import KeyBlock, Provenance
from kms.sequence_ledger import SequenceLedger

HealthState = Literal["up", "degraded", "down"]


@dataclass(frozen=True)
class SourceHealth:
    """A source's own view of itself: state, why, and figures worth graphing."""

    state: HealthState
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


class LinkChannel(ABC):
    """A link end's authenticated line to its peer end's source (over the KM channel)."""

    @abstractmethod
    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        """Hand ``message`` (JSON-able, never key material in the clear) to the peer end's
        :meth:`KeySource.respond` and return its reply; Unavailable if the peer cannot
        be reached or refused."""


@dataclass(frozen=True)
class SourceContext:
    """What a source may need to know about where it runs.

    ``channel`` (in the link manager) reaches the peer end's source; ``inbox`` holds the
    blocks this end's source made while answering its peer (in a web worker) until the
    link manager fetches them. Both are None where a source runs without a link.
    ``ledger`` (in a web worker) remembers the newest sequence accepted from the peer,
    for sources that must refuse replayed or reordered messages."""

    kme_id: str
    peer_kme_id: str | None = None
    link_id: str | None = None
    data_dir: str | None = None
    channel: LinkChannel | None = field(default=None, compare=False)
    inbox: BlockInbox | None = field(default=None, compare=False)
    ledger: SequenceLedger | None = field(default=None, compare=False)


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
        bad setting relative to the section (e.g. ``length_km: must be >= 0``).

        Building must not begin producing: no worker thread, no device session (that is
        :meth:`start`), so a source can be built only to check its settings."""

    @classmethod
    def validate_config(cls, section: dict[str, Any], context: SourceContext) -> None:
        """Raise ConfigError as :meth:`from_config` would, without producing anything.

        ``qkms serve`` calls this for every link end before starting any process. The
        default builds the source and drops it unstarted; a source whose construction
        is costly or reaches out (a device login, say) overrides it with a check of the
        section alone."""
        cls.from_config(section, context)

    @classmethod
    def conflict_at_node(cls, sections: Sequence[dict[str, Any]]) -> tuple[int, str] | None:
        """Whether this kind's sections of one node's links (in config order, each valid
        on its own) can run side by side: None, or the index of the first that cannot
        beside the earlier ones and why, naming its setting (``pass_offset_s: ...``).
        ``qkms serve`` asks once per kind; the default finds no conflict."""
        return None

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

    def respond(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer the peer end's source (a message it sent through its ``channel``),
        leaving any blocks made in ``context.inbox``. Runs in a web worker, on an
        instance that was never started; must be safe to call concurrently and to
        repeat. Sources whose ends need no conversation keep this default."""
        raise BadRequest(f"the {self.kind} source takes no messages from its peer")

    def accepts_pushes_from(self, names: Sequence[str]) -> bool:
        """Whether a device whose client certificate carries ``names`` (subject CN, SAN
        DNS names) pushes key material to this end (sources fed by device pushes)."""
        return False

    def accept_pushed(self, block: KeyBlock) -> None:
        """Keep a chunk the device pushed (``block_id`` ``<stream>:<index>``, ``sequence``
        the index) for this end; BadRequest if it is not one this end takes. Runs in a web
        worker, on an instance that was never started."""
        raise BadRequest(f"the {self.kind} source takes no pushed key material")

    def observe_pool(self, unused_bits: dict[str, int]) -> None:
        """The link's unused bits at this end, per pool half (owner KME_ID -> bits), as
        the link manager sees them about once a second. A source that produces on request
        (a device it pulls keys from) keeps each half topped up to a target level and no
        further; the others ignore it (the default)."""

    def start(self) -> None:
        """Begin producing (background sources start their worker here)."""

    def stop(self) -> None:
        """Stop producing; idempotent."""
