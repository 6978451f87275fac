"""The link manager: one process per node that runs the node's link key sources.

It moves blocks from each source into the pools (split between the link's two ends
by owner), publishes the node's link halves on the link board, pushes link state to
its neighbours (the other ends of its links; kms/link_gossip.py: only what changed,
and what it learnt from others, instead of polling every peer), and periodically
tells each peer how far this node has used its own half so the peer can drop what was
used or skipped (pool sync). It follows the node's runtime configuration (admin
changes, kms/runtime_config.py): it starts and stops link ends as links are added,
paused, drained or change policy, pulls admin changes its neighbours hold and it
lacks (their change-log digests differ), and carries out what changes ask of a link
end (qkms/link_effects.py).

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

from kms.admin import merge_changes
from kms.changes import digest
from kms.config import LinkConfig, NodeConfig, PoolRole, RedisConfig
from kms.errors import ConfigError, QkmsError
from kms.inbox import BlockInbox
from kms.keys import KeyBlock
from kms.link_board import LinkBoard, LinkHalf
from kms.link_exchange import TransportLinkChannel
from kms.link_gossip import Gossip
from kms.link_manager_state import HEARTBEAT_INTERVAL_S, LinkManagerState, heartbeat_ttl_s
from kms.pools import PoolStore, owner_of
from kms.relay import PeerTransport
from kms.runtime_config import RuntimeConfig, RuntimeView
from kms.source_registry import build_source, require_known_kind, source_class, validate_source
from kms.sources import KeySource, SourceContext
from kms.storage.embedded_redis import die_with_parent
from qkms.failure_log import FailureLog
from qkms.link_effects import LinkEffects
from qkms.rate_limited_log import RateLimitedLog

log = logging.getLogger("qkms.linkd")

FILL_INTERVAL_S = 0.2
PUBLISH_INTERVAL_S = 1.0
#: How often link state is pushed to neighbours (only to those with something new, or
#: due a refresh): the delay a change takes per hop.
GOSSIP_INTERVAL_S = 0.5
SYNC_INTERVAL_S = 5.0
#: The window of the measured key rate each half reports (``fill_rate_bps``).
RATE_WINDOW_S = 60.0
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
    #: (monotonic time, bits) of material added to this pool at this end, for its rate.
    added: deque = field(default_factory=lambda: deque(maxlen=4096))
    started_at: float = field(default_factory=time.monotonic)

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
        raise ConfigError(f"{_section_path(index, role)}.{exc.message}") from None


def _section_path(index: int, role: PoolRole) -> str:
    return f"links[{index}].{'source' if role == 'qkd' else 'pqc'}"


def build_link_end(config: NodeConfig, link: LinkConfig, role: PoolRole, transport: PeerTransport | None = None,
                   inbox: BlockInbox | None = None) -> LinkEnd:
    """Instantiate (not start) the ``role`` source of a link this node is an end of;
    ConfigError naming ``links[i].source.<setting>`` if its section is invalid."""
    index = next(i for i, entry in enumerate(config.links) if entry.id == link.id)
    kind, section, context = source_settings(config, link, role, transport, inbox)
    return LinkEnd(link, context.peer_kme_id, _at_link(index, role, build_source, kind, section, context), role)


def build_link_ends(config: NodeConfig, transport: PeerTransport | None = None,
                    inbox: BlockInbox | None = None) -> list[LinkEnd]:
    """Instantiate (not start) every key source of every link this node is an end of."""
    return [build_link_end(config, link, role, transport, inbox) for link in config.local_links() for role in link.roles]


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
    _check_side_by_side(config)


def _check_side_by_side(config: NodeConfig) -> None:
    """ConfigError naming ``links[i].source.<setting>`` if sources of one kind at this
    node cannot run together (KeySource.conflict_at_node), e.g. overlapping satellite passes."""
    by_kind: dict[str, list[tuple[int, PoolRole, dict[str, Any]]]] = {}
    for index, link in enumerate(config.links):
        for role in link.roles if config.kme_id in link.nodes else ():
            kind, section, _ = source_settings(config, link, role)
            by_kind.setdefault(kind, []).append((index, role, section))
    for kind, ends in by_kind.items():
        conflict = source_class(kind).conflict_at_node([section for _, _, section in ends]) if len(ends) > 1 else None
        if conflict is not None:
            index, role, _ = ends[conflict[0]]
            raise ConfigError(f"{_section_path(index, role)}.{conflict[1]}")


EndBuilder = Callable[[NodeConfig, LinkConfig, PoolRole], LinkEnd]


class LinkManager:
    """Runs until ``stop()``; every step is safe to repeat after a crash, and a step that
    fails, for whatever reason, is logged and retried by the next one.

    ``heartbeat()`` is called about every HEARTBEAT_INTERVAL_S while the loop runs. With
    a ``runtime`` (the node's admin changes) it follows the node's runtime configuration,
    building new link ends with ``build_end``."""

    def __init__(self, config: NodeConfig, pools: PoolStore, board: LinkBoard,
                 transport: PeerTransport, ends: list[LinkEnd], heartbeat: Callable[[], None] = lambda: None,
                 runtime: RuntimeConfig | None = None, build_end: EndBuilder | None = None):
        self._config = config
        self._pools = pools
        self._board = board
        self._transport = transport
        self._ends = ends
        self._heartbeat = heartbeat
        self._runtime = runtime
        self._build_end = build_end
        self._view: RuntimeView | None = None
        self._gossip = Gossip(config.kme_id)
        self._effects = LinkEffects(config.kme_id, pools, runtime.log if runtime else None)
        #: Pools of local links without a running end (paused, or a source that cannot be
        #: built), with the reason reported for them.
        self._idle: dict[str, str] = {}
        self._own: list[LinkHalf] = []
        self._failures = FailureLog(log, "link manager step")
        self._unreachable = RateLimitedLog(log)
        self._running = False
        self._stopping = threading.Event()

    # --- the node's runtime configuration -------------------------------------------------

    def reconfigure(self) -> None:
        """Follow the node's current runtime view: peers, link ends, eavesdroppers, pool
        destructions (nothing without a runtime, or when the view did not change)."""
        if self._runtime is None:
            return
        view = self._runtime.view()
        if view is self._view:
            return
        self._view, self._config = view, view.config
        self._transport.reconfigure(view.config)
        self._sync_ends(view.config)
        self._effects.apply(view)

    def _sync_ends(self, config: NodeConfig) -> None:
        """Stop ends whose link went away, was paused or got another source section;
        build and start those now wanted; feed only active links."""
        current = {(end.config.id, end.role): end for end in self._ends}
        ends, self._idle = [], {}
        for link in config.local_links():
            for role in link.roles:
                end = current.pop((link.id, role), None)
                if end is not None and (not link.routable or end.config.section(role) != link.section(role)):
                    end.source.stop()
                    end = None
                if not link.routable:
                    self._idle[link.pool_id(role)] = "paused by an administrator"
                    continue
                end = end or self._new_end(config, link, role)
                if end is not None:
                    end.config = link
                    ends.append(end)
        for gone in current.values():
            gone.source.stop()
        self._ends = ends
        self._feed_or_stop()

    def _new_end(self, config: NodeConfig, link: LinkConfig, role: PoolRole) -> LinkEnd | None:
        try:
            if self._build_end is None:
                raise ConfigError("this link manager cannot build link ends")
            return self._build_end(config, link, role)
        except QkmsError as exc:
            log.error("link %s: cannot run its %s source: %s", link.id, role, exc.message)
            self._idle[link.pool_id(role)] = f"source not running: {exc.message}"
            return None

    def _feed_or_stop(self) -> None:
        if not self._running:
            return
        for end in self._ends:
            (end.source.start if end.config.feeds else end.source.stop)()

    # --- the pools --------------------------------------------------------------------------

    def fill(self) -> int:
        """Move ready blocks into the pools: the peer's half at once, this node's own half
        only after the peer confirms it (see :meth:`confirm`). A block that could not be
        stored is kept for the next call (a source hands each block out once). Returns
        blocks added. Links that are draining get nothing."""
        added = 0
        for end in self._ends:
            if not end.config.feeds:
                continue
            for block in end.source.fetch(MAX_FETCH_BITS):
                own = owner_of(block, end.config.nodes) == self._config.kme_id
                (end.unconfirmed if own else end.unstored)[block.sequence] = block
            _bound(end.unconfirmed)
            _bound(end.unstored)
            if end.unstored:
                sequences = sorted(end.unstored)
                blocks = [end.unstored[s] for s in sequences]
                stored = self._pools.add_blocks(end.pool_id, end.peer, blocks)
                added += stored
                end.added.append((time.monotonic(), sum(block.size_bits for block in blocks)))
                end.peer_half_sequences.extend(sequences)
                end.unstored.clear()
        return added

    def confirm(self, end: LinkEnd, held_by_peer: tuple[int, ...]) -> int:
        """Release own blocks the peer holds; forget those the peer has moved past without."""
        held = set(held_by_peer)
        ready = sorted(held & set(end.unconfirmed))
        added = self._pools.add_blocks(end.pool_id, self._config.kme_id, [end.unconfirmed[s] for s in ready]) \
            if ready else 0
        if ready:
            end.added.append((time.monotonic(), sum(end.unconfirmed[s].size_bits for s in ready)))
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
        """This node's link halves: one per running end, and one (down) per idle pool."""
        now = time.time()
        halves = []
        for end in self._ends:
            health = end.source.health()
            bits = self._pools.available_bits(end.pool_id, self._config.kme_id)
            provenance = end.source.provenance
            state, reason = health.state, health.reason
            if not end.config.feeds:
                state, reason = ("up" if bits else "down"), f"draining: sources stopped, {bits} bits left"
            metrics = {**health.metrics, "fill_rate_bps": _rate_bps(end)}
            halves.append(LinkHalf(end.pool_id, self._config.kme_id, bits, state, reason, metrics, now,
                                   provenance.sources, provenance.algorithms, tuple(end.peer_half_sequences)))
        halves += [LinkHalf(pool, self._config.kme_id, self._pools.available_bits(pool, self._config.kme_id),
                            "down", reason, {}, now) for pool, reason in self._idle.items()]
        return halves

    def publish(self) -> None:
        """Put this node's halves on its own board; audit eavesdropping alarms."""
        self._own = self.own_halves()
        self._board.publish(self._own)
        self._effects.check_alarms(self._own, {pool: self._other_end(pool) for pool in
                                               (half.link_id for half in self._own)})

    # --- link state with the neighbours -----------------------------------------------------

    def _other_end(self, pool: str) -> str | None:
        link_id = pool.split("#", 1)[0]
        link = next((link for link in self._config.local_links() if link.id == link_id), None)
        return None if link is None else next(n for n in link.nodes if n != self._config.kme_id)

    def neighbours(self) -> list[str]:
        """The other ends of this node's links: the nodes it pushes link state to (every
        peer while it has no link, so that a node just added still hears of changes)."""
        linked = {n for link in self._config.local_links() for n in link.nodes} - {self._config.kme_id}
        return sorted(linked or {peer.kme_id for peer in self._config.peers})

    def gossip(self) -> None:
        """Release own blocks the link peers confirm (their pushed halves); push each
        neighbour what it has not heard; pull admin changes from one whose log differs."""
        board = self._board.read()
        for end in self._ends:
            peer_half = board.get((end.pool_id, end.peer))
            if peer_half is not None:
                self.confirm(end, peer_half.held_peer_sequences)
        self._gossip.advertise(self._own)
        self._gossip.forget_own((half.link_id, half.owner) for half in self._own)
        mine = self._view.digest if self._view is not None else digest(())
        for neighbour in self.neighbours():
            halves = self._gossip.outbox(neighbour, board, self._other_end)
            if not halves and not self._gossip.refresh_due(neighbour):
                continue
            try:
                theirs = self._transport.push_halves(neighbour, halves, mine)
            except QkmsError as exc:
                self._unreachable.warning((neighbour,), f"link state not pushed to {neighbour}: {exc.message}")
                continue
            self._gossip.delivered(neighbour, halves)
            if theirs != mine and self._runtime is not None:
                self._pull_changes(neighbour)

    def _pull_changes(self, neighbour: str) -> None:
        try:
            changes = self._transport.fetch_changes(neighbour)
        except QkmsError as exc:
            self._unreachable.warning((neighbour, "changes"), f"admin changes not pulled from {neighbour}: "
                                                              f"{exc.message}")
            return
        added = merge_changes(self._runtime, changes, neighbour)
        if added:
            log.info("%d admin change(s) caught up from %s", len(added), neighbour)

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

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        self._running = True
        self._feed_or_stop()
        due = {"beat": 0.0, "publish": 0.0, "gossip": 0.0, "sync": time.monotonic() + SYNC_INTERVAL_S}
        try:
            self.step(due)
            while not self._stopping.wait(FILL_INTERVAL_S):
                self.step(due)
        finally:
            self._running = False
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
        self.reconfigure()
        self.fill()
        if now >= due["publish"]:
            self.report_pool_levels()
            self.publish()
            due["publish"] = now + PUBLISH_INTERVAL_S
        if now >= due["gossip"]:
            self.gossip()
            due["gossip"] = now + GOSSIP_INTERVAL_S
        if now >= due["sync"]:
            self.sync_pools()
            due["sync"] = now + SYNC_INTERVAL_S

    def stop(self, *_args) -> None:
        self._stopping.set()


def _rate_bps(end: LinkEnd) -> float:
    """Bits per second added to the end's pool over the last RATE_WINDOW_S (or since it started)."""
    now = time.monotonic()
    window = min(RATE_WINDOW_S, max(1.0, now - end.started_at))
    return sum(bits for at, bits in end.added if now - at <= window) / window


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
    from kms.storage import open_storage, open_telemetry
    from qkms.audit_log import install_audit_log
    from qkms.link_telemetry import LinkdMetrics, LinkRecorder, ObservedBoard
    from qkms.rate_curve import publish_rate_curves

    install_audit_log(config.audit)
    transport = HttpPeerTransport(config)
    storage = open_storage(redis, config.kme_id, node_sealer(config), storage_limits(config))
    # It beats whatever links the file gives: an administrator may add this node's first.
    state = LinkManagerState(storage.link_manager, heartbeat_ttl_s(config))
    pid = os.getpid()
    # Every half on the board, its own and those its peers push, is also recorded for the
    # dashboard (samples, alarms).
    telemetry = open_telemetry(redis, config.kme_id)
    board = ObservedBoard(storage.board, LinkRecorder(telemetry, storage.store.ping, LinkdMetrics()))
    threading.Thread(target=publish_rate_curves, args=(list(config.local_links()), telemetry),
                     name="rate curves", daemon=True).start()
    manager = LinkManager(config, storage.pools, board, transport, [], lambda: state.beat(pid),
                          RuntimeConfig(config, storage.changes),
                          lambda node, link, role: build_link_end(node, link, role, transport, storage.inbox))
    signal.signal(signal.SIGTERM, manager.stop)
    signal.signal(signal.SIGINT, manager.stop)
    log.info("link manager of %s running", config.kme_id)
    manager.run()
    transport.close()
    storage.close()
