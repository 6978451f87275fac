"""A node's runtime configuration: its file configuration with the admin changes applied.

The file (kms/config.py) stays the validated start-up configuration; the admin
changes (kms/changes.py) are applied on top of it, in the log's total order, as
edits of the configuration document, and the result is validated with the same
pydantic models, so an error names the setting's path (``links[2].policy: ...``). A
change that would make the configuration invalid is refused by the admin API; one
that arrives from a peer and does not fit here (a node's file disagrees) is skipped
and reported, never half applied. Changes with an ``effective_at`` in the future
apply from that moment on.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kms.changes import Change, ChangeLog, digest, ordered
from kms.config import ROLES_BY_POLICY, NodeConfig, parse_config
from kms.errors import BadRequest, ConfigError


class InvalidChange(BadRequest):
    """An admin change that the configuration cannot take; the message names the setting."""

    message = "invalid change"


@dataclass(frozen=True)
class Eavesdropper:
    """A simulated eavesdropper on a link: ``attack`` (the simulator's model name) on
    ``fraction`` of the pulses."""

    attack: str
    fraction: float


@dataclass(frozen=True)
class RuntimeView:
    """What one node runs with: the effective configuration and what only the change log
    knows (eavesdroppers, pool destructions, removed SAEs), built from log ``version``."""

    config: NodeConfig
    version: int = 0
    digest: str = digest(())
    changes: tuple[Change, ...] = ()
    skipped: tuple[tuple[Change, str], ...] = ()
    eavesdroppers: Mapping[str, Eavesdropper] = field(default_factory=dict)
    #: link id -> the change_ids of every destroy-pools change of that link, in order.
    destroys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: SAE_ID -> unix time of its removal (while it stays removed).
    removed_saes: Mapping[str, float] = field(default_factory=dict)
    #: The earliest ``effective_at`` still to come (None: none).
    next_activation: float | None = None


def document(config: NodeConfig) -> dict[str, Any]:
    """The configuration as the document it was validated from (paths resolved)."""
    return config.model_dump(mode="json", exclude_unset=True)


class _Fold:
    """The configuration document being edited change by change."""

    def __init__(self, base: NodeConfig):
        self.kme_id = base.kme_id
        self.doc = document(base)
        #: Every source section a link was configured with, so a policy that drops one
        #: (qkd-only drops ``pqc``) can take it back later.
        self.sections = {link["id"]: {k: link[k] for k in ("source", "pqc") if link.get(k) is not None}
                         for link in self.doc.get("links", [])}
        self.eavesdroppers: dict[str, Eavesdropper] = {}
        self.destroys: dict[str, list[str]] = {}
        self.removed_saes: dict[str, float] = {}

    def snapshot(self) -> tuple:
        return copy.deepcopy((self.doc, self.sections, self.eavesdroppers, self.destroys, self.removed_saes))

    def restore(self, saved: tuple) -> None:
        self.doc, self.sections, self.eavesdroppers, self.destroys, self.removed_saes = saved

    def apply(self, change: Change) -> None:
        """Edit the document as ``change`` says; InvalidChange if it cannot apply."""
        handler = getattr(self, "_" + change.op.replace("-", "_"), None)
        if handler is None:
            raise InvalidChange(f"op: unknown operation {change.op!r}")
        handler(change)

    # --- the operations -----------------------------------------------------------------

    def _put_sae(self, change: Change) -> None:
        sae_id, node = _arg(change, "id", str), _arg(change, "node", str)
        entry = {"id": sae_id, **({"cert_identity": change.args["cert_identity"]}
                                  if change.args.get("cert_identity") else {})}
        if node == self.kme_id:
            saes = [s for s in self.doc.get("saes", []) if s["id"] != sae_id]
            self.doc["saes"] = [*saes, entry]
        else:
            peer = self._peer(node, "node")
            peer["saes"] = [*[s for s in peer.get("saes", []) if s != sae_id], sae_id]
        self.removed_saes.pop(sae_id, None)

    def _remove_sae(self, change: Change) -> None:
        sae_id = _arg(change, "id", str)
        found = any(s["id"] == sae_id for s in self.doc.get("saes", [])) or any(
            sae_id in peer.get("saes", []) for peer in self.doc.get("peers", []))
        if not found:
            raise InvalidChange(f"id: no SAE {sae_id} in the network")
        self.doc["saes"] = [s for s in self.doc.get("saes", []) if s["id"] != sae_id]
        for peer in self.doc.get("peers", []):
            peer["saes"] = [s for s in peer.get("saes", []) if s != sae_id]
        self.removed_saes[sae_id] = change.at

    def _put_peer(self, change: Change) -> None:
        kme_id = _arg(change, "kme_id", str)
        if kme_id == self.kme_id:
            return  # this node itself: its own file says who it is
        entry = {"kme_id": kme_id, "url": _arg(change, "url", str), "saes": list(_arg(change, "saes", list))}
        self.doc["peers"] = [*[p for p in self.doc.get("peers", []) if p["kme_id"] != kme_id], entry]

    def _put_link(self, change: Change) -> None:
        link = dict(_arg(change, "link", dict))
        link.update((change.args.get("at") or {}).get(self.kme_id, {}))
        link_id = link.get("id")
        self.sections[link_id] = {k: link[k] for k in ("source", "pqc") if link.get(k) is not None}
        links = self.doc.get("links", [])
        index = next((i for i, entry in enumerate(links) if entry["id"] == link_id), None)
        self.doc["links"] = links[:index] + [link] + links[index + 1:] if index is not None else [*links, link]

    def _set_policy(self, change: Change) -> None:
        index, link = self._link(change)
        policy = _arg(change, "policy", str)
        if policy not in ROLES_BY_POLICY:
            raise InvalidChange(f"links[{index}].policy: unknown policy {policy!r} "
                                f"(one of {', '.join(ROLES_BY_POLICY)})")
        roles = ROLES_BY_POLICY[policy]
        for role, name in (("qkd", "source"), ("pqc", "pqc")):
            link.pop(name, None)
            if role in roles:
                if name not in self.sections.get(link["id"], {}):
                    raise InvalidChange(f"links[{index}].{name}: a {policy} link needs a {name} section, "
                                        "and this link was configured without one")
                link[name] = copy.deepcopy(self.sections[link["id"]][name])
        link["policy"] = policy
        link.pop("fallback_below_bits", None)
        if policy == "qkd-then-pqc" and change.args.get("fallback_below_bits") is not None:
            link["fallback_below_bits"] = change.args["fallback_below_bits"]

    def _set_link_state(self, change: Change) -> None:
        self._link(change)[1]["state"] = _arg(change, "state", str)

    def _destroy_pools(self, change: Change) -> None:
        index, link = self._link(change)
        link["state"] = "paused"
        self.destroys.setdefault(link["id"], []).append(change.change_id)

    def _set_eavesdropper(self, change: Change) -> None:
        index, link = self._link(change)
        attack = change.args.get("attack")
        if attack is None:
            self.eavesdroppers.pop(link["id"], None)
            return
        fraction = change.args.get("fraction", 1.0)
        if not isinstance(attack, str) or isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise InvalidChange("attack: must name an attack, fraction a number")
        if not 0 < fraction <= 1:
            raise InvalidChange("fraction: must be above 0 and at most 1")
        self.eavesdroppers[link["id"]] = Eavesdropper(attack, float(fraction))

    # --- helpers ----------------------------------------------------------------------

    def _peer(self, kme_id: str, name: str) -> dict:
        peer = next((p for p in self.doc.get("peers", []) if p["kme_id"] == kme_id), None)
        if peer is None:
            raise InvalidChange(f"{name}: unknown node {kme_id}")
        return peer

    def _link(self, change: Change) -> tuple[int, dict]:
        link_id = _arg(change, "link", str)
        for index, link in enumerate(self.doc.get("links", [])):
            if link["id"] == link_id:
                return index, link
        raise InvalidChange(f"link: unknown link {link_id}")


def _arg(change: Change, name: str, kind: type) -> Any:
    value = change.args.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise InvalidChange(f"{name}: required ({kind.__name__})")
    return value


def _validated(fold: _Fold, base: NodeConfig) -> NodeConfig:
    try:
        return parse_config(fold.doc, base.config_dir)
    except ConfigError as exc:
        # A whole-configuration check names its setting in its message: drop "(root): ".
        raise InvalidChange(re.sub(r"^\(root\): (?=[a-z_]+(\[\d+\])?[.:])", "", exc.message)) from None


def apply_changes(base: NodeConfig, changes: Sequence[Change], version: int = 0,
                  now: float | None = None) -> RuntimeView:
    """``base`` with every change effective at ``now`` applied in the log's order. A
    change that cannot apply (or leaves the configuration invalid) is skipped, with
    its reason, and changes nothing."""
    now = time.time() if now is None else now
    effective = [c for c in ordered(changes) if c.effective_at <= now]
    upcoming = [c.effective_at for c in changes if c.effective_at > now]
    fold, skipped = _Fold(base), []
    try:  # the usual case, every change fits: one validation
        for change in effective:
            fold.apply(change)
        config = _validated(fold, base)
    except InvalidChange:
        fold, config, skipped = _apply_one_by_one(base, effective)
    return RuntimeView(config, version, digest(changes), tuple(effective), tuple(skipped),
                       dict(fold.eavesdroppers), {k: tuple(v) for k, v in fold.destroys.items()},
                       dict(fold.removed_saes), min(upcoming, default=None))


def _apply_one_by_one(base: NodeConfig, changes: Sequence[Change]) -> tuple[_Fold, NodeConfig, list]:
    fold, config, skipped = _Fold(base), base, []
    for change in changes:
        saved = fold.snapshot()
        try:
            fold.apply(change)
            config = _validated(fold, base)
        except InvalidChange as exc:
            fold.restore(saved)
            skipped.append((change, exc.message))
    return fold, config, skipped


def check_change(base: NodeConfig, changes: Sequence[Change], change: Change) -> RuntimeView:
    """The view ``changes`` and ``change`` give, ``change`` taken as effective at once;
    InvalidChange naming the setting if ``change`` cannot apply (nothing is stored)."""
    trial = apply_changes(base, [*changes, replace(change, effective_at=0.0)])
    reason = next((why for skipped, why in trial.skipped if skipped.change_id == change.change_id), None)
    if reason is not None:
        raise InvalidChange(reason)
    return trial


class RuntimeConfig:
    """One process's view of its node's runtime configuration: rebuilt when the change
    log's version moves (one small read per call) or a change's ``effective_at`` passes."""

    def __init__(self, base: NodeConfig, log: ChangeLog, clock: Callable[[], float] = time.time):
        self.base = base
        self.log = log
        self._clock = clock
        self._view: RuntimeView | None = None

    def view(self) -> RuntimeView:
        """The current view; StoreError if the log cannot be read."""
        now = self._clock()
        version = self.log.version()
        cached = self._view
        if cached is not None and cached.version == version and (
                cached.next_activation is None or cached.next_activation > now):
            return cached
        version, changes = self.log.read()
        self._view = apply_changes(self.base, changes, version, now)
        return self._view
