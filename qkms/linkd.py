"""The link manager: one process per node that runs the node's link key sources.

It moves blocks from each source into the pools (split between the link's two ends
by owner), publishes the node's link halves on the link board, polls its peers'
halves for routing, and periodically tells each peer how far this node has used its
own half so the peer can drop what was used or skipped (pool sync).

A block of this node's own half becomes usable only once the peer has reported
holding the same block: the owner never carves bits its peer lacks (after a restart,
say), so a relay never fails for a missing block. Blocks held only by the peer are
dropped there by pool sync.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kms.config import LinkConfig, NodeConfig, PoolRole, RedisConfig
from kms.storage.embedded_redis import die_with_parent
from kms.errors import ConfigError, QkmsError
from kms.inbox import BlockInbox
from kms.keys import KeyBlock
from kms.link_board import LinkBoard, LinkHalf
from kms.link_exchange import TransportLinkChannel
from kms.link_manager_state import HEARTBEAT_INTERVAL_S, LinkManagerState
from kms.pools import PoolStore, owner_of
from kms.relay import PeerTransport
from kms.source_registry import build_source, require_known_kind, validate_source
from kms.sources import KeySource, SourceContext
from qkms.failure_log import FailureLog

log = logging.getLogger("qkms.linkd")

FILL_INTERVAL_S = 0.2
PUBLISH_INTERVAL_S = 1.0
POLL_INTERVAL_S = 1.0
SYNC_INTERVAL_S = 5.0
# Only positions this old are synced, so a relay still in flight is never pre-empted.
SYNC_LAG_S = 15.0
MAX_FETCH_BITS = 1 << 40
# How many recent sequences of the peer's half a node reports, and how many of its
# own blocks it keeps waiting for the peer's confirmation.
REPORTED_SEQUENCES = 128
MAX_UNCONFIRMED_BLOCKS = 256


@dataclass
class LinkEnd:
    """One source of one local link (its QKD or its PQC source, by ``role``): the link's
    config, the source, and the history of this end's head of the source's pool."""

    config: LinkConfig
    peer: str
    source: KeySource
    role: PoolRole = "qkd"
    heads: deque = field(default_factory=lambda: deque(maxlen=64))
    unconfirmed: dict[int, KeyBlock] = field(default_factory=dict)
    #: Blocks of the peer's half fetched from the source but not yet stored (a failed step).
    unstored: dict[int, KeyBlock] = field(default_factory=dict)
    peer_half_sequences: deque = field(default_factory=lambda: deque(maxlen=REPORTED_SEQUENCES))

    @property
    def pool_id(self) -> str:
        """The pool this source fills (``<link>`` for QKD, ``<link>#pqc`` for PQC)."""
        return self.config.pool_id(self.role)


def source_settings(config: NodeConfig, link: LinkConfig, role: PoolRole, transport: PeerTransport | None = None,
                    inbox: BlockInbox | None = None) -> tuple[str, dict[str, Any], SourceContext]:
    """(kind, the section, its context) of the ``role`` source of a link this node is an
    end of, the context naming the source's pool as its link; with a ``transport`` the
    context carries the channel to the peer end's source."""
    peer = next(n for n in link.nodes if n != config.kme_id)
    section = link.section(role)
    channel = TransportLinkChannel(transport, peer, link.pool_id(role)) if transport is not None else None
    return section["kind"], {k: v for k, v in section.items() if k != "kind"}, SourceContext(
        config.kme_id, peer, link.pool_id(role), str(config.config_dir), channel=channel, inbox=inbox)


def _at_link(index: int, role: PoolRole, check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``, a ConfigError's setting path put under ``links[index].source``
    (QKD) or ``links[index].pqc``."""
    try:
        return check(*args)
    except ConfigError as exc:
        raise ConfigError(f"links[{index}].{'source' if role == 'qkd' else 'pqc'}.{exc.message}") from None


def build_link_ends(config: NodeConfig, transport: PeerTransport | None = None,
                    inbox: BlockInbox | None = None) -> list[LinkEnd]:
    """Instantiate (not start) every key source of every link this node is an end of."""
    ends = []
    for index, link in enumerate(config.links):
        if config.kme_id in link.nodes:
            for role in link.roles:
                kind, section, context = source_settings(config, link, role, transport, inbox)
                source = _at_link(index, role, build_source, kind, section, context)
                ends.append(LinkEnd(link, context.peer_kme_id, source, role))
    return ends


def validate_link_sources(config: NodeConfig) -> None:
    """ConfigError naming ``links[i].source.<setting>`` (or ``links[i].pqc.<setting>``)
    for the first invalid link source.

    This node's own links are checked by their source (see KeySource.validate_config:
    nothing starts); links between other nodes need only a known kind, and for those
    nothing is imported."""
    for index, link in enumerate(config.links):
        for role in link.roles:
            if config.kme_id in link.nodes:
                _at_link(index, role, validate_source, *source_settings(config, link, role))
            else:
                _at_link(index, role, require_known_kind, link.section(role)["kind"])


class LinkManager:
    """Runs until ``stop()``; every step is safe to repeat after a crash, and a step that
    fails, for whatever reason, is logged and retried by the next one.

    ``heartbeat()`` is called about every HEARTBEAT_INTERVAL_S while the loop runs."""

    def __init__(self, config: NodeConfig, pools: PoolStore, board: LinkBoard,
                 transport: PeerTransport, ends: list[LinkEnd], heartbeat: Callable[[], None] = lambda: None):
        self._config = config
        self._pools = pools
        self._board = board
        self._transport = transport
        self._ends = ends
        self._heartbeat = heartbeat
        self._failures = FailureLog(log, "link manager step")
        self._stopping = threading.Event()

    def fill(self) -> int:
        """Move ready blocks into the pools: the peer's half at once, this node's own half
        only after the peer confirms it (see :meth:`confirm`). A block that could not be
        stored is kept for the next call (a source hands each block out once). Returns
        blocks added."""
        added = 0
        for end in self._ends:
            for block in end.source.fetch(MAX_FETCH_BITS):
                own = owner_of(block, end.config.nodes) == self._config.kme_id
                (end.unconfirmed if own else end.unstored)[block.sequence] = block
            _bound(end.unconfirmed)
            _bound(end.unstored)
            if end.unstored:
                sequences = sorted(end.unstored)
                added += self._pools.add_blocks(end.pool_id, end.peer, [end.unstored[s] for s in sequences])
                end.peer_half_sequences.extend(sequences)
                end.unstored.clear()
        return added

    def confirm(self, end: LinkEnd, held_by_peer: tuple[int, ...]) -> int:
        """Release own blocks the peer holds; forget those the peer has moved past without."""
        held = set(held_by_peer)
        ready = sorted(held & set(end.unconfirmed))
        added = self._pools.add_blocks(end.pool_id, self._config.kme_id, [end.unconfirmed[s] for s in ready]) \
            if ready else 0
        for seq in ready:
            del end.unconfirmed[seq]
        newest = max(held, default=-1)
        for seq in [seq for seq in end.unconfirmed if seq < newest]:
            log.warning("link %s: block %d never reached %s; not used", end.pool_id, seq, end.peer)
            del end.unconfirmed[seq]
        return added

    def report_pool_levels(self) -> None:
        """Tell each source how much of each half of its link is unused here
        (KeySource.observe_pool)."""
        for end in self._ends:
            end.source.observe_pool({owner: self._pools.available_bits(end.pool_id, owner)
                                     for owner in end.config.nodes})

    def own_halves(self) -> list[LinkHalf]:
        now = time.time()
        halves = []
        for end in self._ends:
            health = end.source.health()
            bits = self._pools.available_bits(end.pool_id, self._config.kme_id)
            provenance = end.source.provenance
            halves.append(LinkHalf(end.pool_id, self._config.kme_id, bits, health.state, health.reason,
                                   dict(health.metrics), now, provenance.sources, provenance.algorithms,
                                   tuple(end.peer_half_sequences)))
        return halves

    def poll_peers(self) -> None:
        """Learn every peer's link halves; release own blocks adjacent peers confirm."""
        ends = {end.pool_id: end for end in self._ends}
        for peer in self._config.peers:
            try:
                halves = [h for h in self._transport.link_halves(peer.kme_id) if h.owner == peer.kme_id]
            except QkmsError:
                continue
            self._board.publish(halves)
            for half in halves:
                if half.link_id in ends:
                    self.confirm(ends[half.link_id], half.held_peer_sequences)

    def sync_pools(self) -> None:
        now = time.monotonic()
        for end in self._ends:
            head = self._pools.head(end.pool_id, self._config.kme_id)
            if head is not None:
                end.heads.append((now, head))
            old = [h for t, h in end.heads if now - t >= SYNC_LAG_S]
            if old:
                try:
                    self._transport.sync_pool(end.peer, end.pool_id, self._config.kme_id, *old[-1])
                except QkmsError:
                    continue

    def run(self) -> None:
        for end in self._ends:
            end.source.start()
        due = {"beat": 0.0, "publish": 0.0, "poll": 0.0, "sync": time.monotonic() + SYNC_INTERVAL_S}
        try:
            self.step(due)
            while not self._stopping.wait(FILL_INTERVAL_S):
                self.step(due)
        finally:
            for end in self._ends:
                end.source.stop()

    def step(self, due: dict[str, float]) -> None:
        """One round of the work that is due (``due``: next time of each periodic task)."""
        try:
            self._due_work(due)
        except Exception as exc:  # anything: an ended loop would leave the pools unfilled unnoticed
            self._failures.failed(exc)
        else:
            self._failures.succeeded()

    def _due_work(self, due: dict[str, float]) -> None:
        # The heartbeat comes first: it says the loop runs, even while a source keeps failing.
        now = time.monotonic()
        if now >= due["beat"]:
            self._heartbeat()
            due["beat"] = now + HEARTBEAT_INTERVAL_S
        self.fill()
        if now >= due["publish"]:
            self.report_pool_levels()
            self._board.publish(self.own_halves())
            due["publish"] = now + PUBLISH_INTERVAL_S
        if now >= due["poll"]:
            self.poll_peers()
            due["poll"] = now + POLL_INTERVAL_S
        if now >= due["sync"]:
            self.sync_pools()
            due["sync"] = now + SYNC_INTERVAL_S

    def stop(self, *_args) -> None:
        self._stopping.set()


def _bound(blocks: dict[int, KeyBlock]) -> None:
    """Keep at most MAX_UNCONFIRMED_BLOCKS waiting blocks, dropping the oldest."""
    while len(blocks) > MAX_UNCONFIRMED_BLOCKS:
        del blocks[min(blocks)]


def bind_to_parent(parent_pid: int) -> None:
    """Get SIGTERM when the process that started this one exits (Linux parent-death
    signal, set here rather than in a preexec_fn, which is unsafe in a parent with
    threads); exit at once if that process is already gone."""
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent_pid:
        raise SystemExit(f"link manager: parent process {parent_pid} is gone")


def run_link_manager(config: NodeConfig, redis: RedisConfig) -> None:
    """Entry point of the link-manager process (``qkms linkd``) on the node's Redis."""
    from etsi_api.km_client import HttpPeerTransport
    from kms.node import node_sealer, storage_limits
    from kms.storage import open_storage

    transport = HttpPeerTransport(config)
    storage = open_storage(redis, config.kme_id, node_sealer(config), storage_limits(config))
    state = LinkManagerState.for_node(storage.link_manager, config)
    pid = os.getpid()
    manager = LinkManager(config, storage.pools, storage.board, transport,
                          build_link_ends(config, transport, storage.inbox), lambda: state.beat(pid))
    signal.signal(signal.SIGTERM, manager.stop)
    signal.signal(signal.SIGINT, manager.stop)
    log.info("link manager of %s running %d link(s)", config.kme_id, len(manager._ends))
    manager.run()
    transport.close()
    storage.close()
