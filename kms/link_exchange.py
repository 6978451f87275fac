"""Conversations between the two ends of a link's key source, over the KM channel.

The initiating end's source (in the link manager) holds a :class:`TransportLinkChannel`;
the other end answers in a web worker, where :class:`LinkResponders` builds the link's
source once (never started) and hands it the message (:meth:`KeySource.respond`). The
blocks it makes wait in the node's block inbox for its link manager (kms/inbox.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from kms.config import NodeConfig
from kms.errors import BadRequest, Unauthorized
from kms.inbox import BlockInbox
from kms.keys import KeyBlock
from kms.relay import PeerTransport
from kms.sequence_ledger import SequenceLedger
from kms.source_registry import build_source
from kms.sources import KeySource, LinkChannel, SourceContext


class TransportLinkChannel(LinkChannel):
    """The channel of one link end to ``peer``'s end of ``link_id``."""

    def __init__(self, transport: PeerTransport, peer: str, link_id: str):
        self._transport = transport
        self._peer = peer
        self._link_id = link_id

    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        return self._transport.exchange(self._peer, self._link_id, message)


class LinkResponders:
    """This node's answering ends of its links' sources, built on first use. A link
    with two sources has two pools; a message names the pool (``<link>`` for the QKD
    source, ``<link>#pqc`` for the PQC source) as its link."""

    def __init__(self, config: NodeConfig, inbox: BlockInbox, ledger: SequenceLedger | None = None):
        self._config = config
        self._inbox = inbox
        self._ledger = ledger
        self._sources: dict[str, KeySource] = {}
        self._lock = threading.Lock()

    def respond(self, link_id: str, caller: str, message: dict[str, Any]) -> dict[str, Any]:
        """The answer of this node's end of ``link_id`` (a pool id) to its peer ``caller``."""
        return self._source(link_id, caller).respond(message)

    def pushed(self, device_names: Sequence[str], block: KeyBlock) -> str:
        """Key material a device pushed (its certificate carries ``device_names``) to the
        link whose source takes pushes from that device; returns the link's id,
        Unauthorized if no link of this node does."""
        for link in (link for link in self._config.local_links() if "qkd" in link.roles):
            peer = next(node for node in link.nodes if node != self._config.kme_id)
            source = self._source(link.pool_id("qkd"), peer)
            if source.accepts_pushes_from(device_names):
                source.accept_pushed(block)
                return link.id
        raise Unauthorized("the certificate is not that of a device pushing keys to this node")

    def _source(self, link_id: str, caller: str) -> KeySource:
        found = next(((link, role) for link in self._config.local_links() for role in link.roles
                      if link.pool_id(role) == link_id), None)
        if found is None:
            raise BadRequest("no such link at this node")
        link, role = found
        if caller not in link.nodes or caller == self._config.kme_id:
            raise Unauthorized("caller is not the other end of this link")
        with self._lock:
            if link_id not in self._sources:
                section = link.section(role)
                context = SourceContext(self._config.kme_id, caller, link_id, str(self._config.config_dir),
                                        inbox=self._inbox, ledger=self._ledger)
                self._sources[link_id] = build_source(section["kind"], {k: v for k, v in section.items()
                                                                        if k != "kind"}, context)
            return self._sources[link_id]
