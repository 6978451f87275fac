"""Operating a running network: what the admin API does, without HTTP.

An administrator's change is checked here (conflicts: 409; a configuration it would
make invalid: 400 naming the setting; nothing is stored either way), stored in this
node's change log, audited, and pushed over the KM channel to every peer; the
nodes that must know it (a link's two ends, an SAE's node) are reported with the
outcome of their push. Nodes that were unreachable get it later from their
neighbours (anti-entropy, qkms/linkd.py). Changes to a link's policy and to a
simulated eavesdropper carry an ``effective_at`` a moment ahead, so that both ends
switch together (docs/operations.md).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kms import audit
from kms.changes import Change, next_version
from kms.config import LinkConfig, NodeConfig
from kms.errors import BadRequest, Conflict, QkmsError
from kms.relay import PeerTransport
from kms.runtime_config import RuntimeConfig, RuntimeView, check_change

log = logging.getLogger("qkms.admin")

#: Most pushes of one change in flight at once (each to another peer).
MAX_PARALLEL_PUSHES = 16

#: How far ahead a policy switch is set, so both ends of the link have it before it applies.
ACTIVATION_DELAY_S = 2.0
#: The source kind whose eavesdropper the admin API can switch (through its ``eve_file``).
SIMULATED_KIND = "simulated"


@dataclass(frozen=True)
class Propagation:
    """How pushing a change to one peer went: ``required`` peers must know the change
    for it to take full effect (a link's ends, an SAE's node)."""

    node: str
    required: bool
    acknowledged: bool
    reason: str = ""


@dataclass(frozen=True)
class ChangeOutcome:
    """A stored change, what it changed at this node, and where it has arrived."""

    change: Change
    before: Any
    after: Any
    propagation: tuple[Propagation, ...] = ()


def subject(config: NodeConfig, view: RuntimeView, change: Change) -> Any:
    """The part of the configuration ``change`` is about, as it is in ``config``/``view``
    (for the audit trail's before and after; never key material)."""
    args = change.args
    if change.op in ("put-sae", "remove-sae"):
        return {"node": config.node_of_sae(args.get("id", ""))}
    if change.op == "put-peer":
        peer = config.peer(args.get("kme_id", ""))
        return None if peer is None else {"url": peer.url, "saes": list(peer.saes)}
    link_id = args.get("link") if change.op != "put-link" else (args.get("link") or {}).get("id")
    if change.op == "set-eavesdropper":
        eve = view.eavesdroppers.get(link_id)
        return None if eve is None else {"attack": eve.attack, "fraction": eve.fraction}
    link = next((link for link in config.links if link.id == link_id), None)
    return None if link is None else {"nodes": list(link.nodes), "policy": link.policy, "state": link.state}


def audit_change(kme_id: str, change: Change, before: Any, after: Any, **fields: Any) -> None:
    """One ``admin_change`` audit entry: who changed what, before and after, here."""
    audit.event("admin_change", node=kme_id, admin=change.admin, origin=change.origin, op=change.op,
                args=change.args, change_id=change.change_id, version=change.version,
                effective_at=change.effective_at or None, before=before, after=after, **fields)


def merge_changes(runtime: RuntimeConfig, changes: Sequence[Change], received_from: str) -> list[Change]:
    """Store the changes this node lacks (pushed or pulled from ``received_from``) and
    audit each; returns those added. One that does not apply here is kept (the logs of
    all nodes must converge) and skipped by the runtime view, which says why."""
    before = runtime.view()
    added = runtime.log.add(list(changes))
    if not added:
        return []
    after = runtime.view()
    skipped = {change.change_id: why for change, why in after.skipped}
    for change in added:
        audit_change(runtime.base.kme_id, change, subject(before.config, before, change),
                     subject(after.config, after, change), received_from=received_from,
                     skipped=skipped.get(change.change_id))
        if change.change_id in skipped:
            log.warning("admin change %s (%s from %s) does not apply here: %s", change.change_id, change.op,
                        change.origin, skipped[change.change_id])
    return added


class NetworkAdmin:
    """Checks, stores, audits and propagates administrators' changes at one node."""

    def __init__(self, runtime: RuntimeConfig, transport: PeerTransport | None,
                 clock: Callable[[], float] = time.time):
        self.runtime = runtime
        self._transport = transport
        self._clock = clock

    @property
    def kme_id(self) -> str:
        return self.runtime.base.kme_id

    def change(self, admin: str, op: str, args: dict[str, Any]) -> ChangeOutcome:
        """Make ``op`` with ``args`` as ``admin``: Conflict (409) or BadRequest naming the
        setting (400) and nothing stored, or the stored change and its propagation."""
        view = self.runtime.view()
        if op == "remove-sae":  # the SAE's node must hear of it
            args = {**args, "node": view.config.node_of_sae(args.get("id", ""))}
        self._check_conflicts(view, op, args)
        _, changes = self.runtime.log.read()
        now = self._clock()
        change = Change(str(uuid.uuid4()), next_version(changes), self.kme_id, admin, now, op, args,
                        self._effective_at(view.config, op, args, now))
        after = check_change(self.runtime.base, changes, change)
        self.runtime.log.add([change])
        outcome_before, outcome_after = subject(view.config, view, change), subject(after.config, after, change)
        audit_change(self.kme_id, change, outcome_before, outcome_after)
        propagation = self._push(change, after.config)
        return ChangeOutcome(change, outcome_before, outcome_after, propagation)

    # --- checks ---------------------------------------------------------------------------

    def _check_conflicts(self, view: RuntimeView, op: str, args: dict[str, Any]) -> None:
        config = view.config
        if op == "put-sae":
            self._check_new_sae(view, args)
        elif op == "put-peer" and (args.get("kme_id") == config.kme_id or config.peer(args.get("kme_id", ""))):
            raise Conflict(f"node {args['kme_id']} is already part of the network")
        elif op == "put-link" and _link(config, (args.get("link") or {}).get("id")) is not None:
            raise Conflict(f"link {args['link']['id']} already exists")
        elif op == "destroy-pools":
            link = _require_link(config, args.get("link"))
            if link.state == "active":
                raise Conflict(f"link {link.id} is active: pause or drain it before destroying its pools")
        elif op == "set-eavesdropper":
            link = _require_link(config, args.get("link"))
            if link.source.get("kind") != SIMULATED_KIND or "qkd" not in link.roles or not link.source.get(
                    "eve_file"):
                raise Conflict(f"link {link.id} has no simulated QKD source with an eve_file setting")

    def _check_new_sae(self, view: RuntimeView, args: dict[str, Any]) -> None:
        sae_id = args.get("id")
        node = view.config.node_of_sae(sae_id) if isinstance(sae_id, str) else None
        if node is not None:
            raise Conflict(f"SAE {sae_id} is already attached to node {node}")
        removed_at = view.removed_saes.get(sae_id)
        if removed_at is not None and self._clock() - removed_at < view.config.reservation_ttl_s:
            raise Conflict(f"SAE {sae_id} was removed less than reservation_ttl_s ago; keys reserved for it "
                           "then may not have expired yet")

    def _effective_at(self, config: NodeConfig, op: str, args: dict[str, Any], now: float) -> float:
        if op == "set-policy":
            return now + ACTIVATION_DELAY_S
        if op == "set-eavesdropper":
            link = _require_link(config, args.get("link"))
            return mid_slot_after(now + ACTIVATION_DELAY_S, link.source.get("frame_interval_s"))
        return 0.0

    # --- propagation ----------------------------------------------------------------------

    def _push(self, change: Change, config: NodeConfig) -> tuple[Propagation, ...]:
        """Push ``change`` to the nodes that must know it now, all at once (a peer that is
        down costs its timeout once, not once per peer before it); the others hear of it
        from their neighbours (anti-entropy on the link-state exchange), so a change costs
        a few messages whatever the size of the network."""
        peers = sorted(nodes_that_must_know(config, change))
        if not peers:
            return ()
        if self._transport is None:
            return tuple(Propagation(peer, True, False, "this node has no KM channel") for peer in peers)
        self._transport.reconfigure(config)
        workers = min(MAX_PARALLEL_PUSHES, len(peers))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qkms admin push") as pool:
            return tuple(pool.map(lambda peer: self._push_to(peer, change), peers))

    def _push_to(self, peer: str, change: Change) -> Propagation:
        try:
            self._transport.push_changes(peer, [change])
        except QkmsError as exc:
            return Propagation(peer, True, False, exc.message)
        return Propagation(peer, True, True)


def nodes_that_must_know(config: NodeConfig, change: Change) -> frozenset[str]:
    """The peers a change must reach to take effect: a link's ends; for an SAE every
    peer (any node may serve a slave of its keys, and must refuse a removed one as
    master); for a new node itself and every peer (a link to it may be added at any of
    them next). Nodes and SAEs change rarely; a link's state often, and reaches only its
    ends at once, the other nodes by gossip."""
    args = change.args
    if change.op in ("put-sae", "remove-sae"):
        return frozenset(peer.kme_id for peer in config.peers)
    if change.op == "put-peer":
        return frozenset({args.get("kme_id"), *(peer.kme_id for peer in config.peers)}) - {config.kme_id}
    link_id = (args.get("link") or {}).get("id") if change.op == "put-link" else args.get("link")
    link = _link(config, link_id)
    return frozenset(link.nodes) - {config.kme_id} if link else frozenset()


def mid_slot_after(earliest: float, interval_s: Any) -> float:
    """The first middle of a frame slot of ``interval_s`` (frames start at multiples of
    it, as the simulated source runs them) at or after ``earliest``: an eavesdropper set
    there at both ends applies to the same next frame at both."""
    if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or interval_s <= 0:
        return earliest
    slot = math.ceil((earliest - interval_s / 2) / interval_s)
    return slot * interval_s + interval_s / 2


def _link(config: NodeConfig, link_id: Any) -> LinkConfig | None:
    return next((link for link in config.links if link.id == link_id), None)


def _require_link(config: NodeConfig, link_id: Any) -> LinkConfig:
    link = _link(config, link_id)
    if link is None:
        raise BadRequest(f"link: unknown link {link_id}")
    return link
