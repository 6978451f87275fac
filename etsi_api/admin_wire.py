"""JSON of the admin API: request bodies read into changes, views written for operators
and the dashboard. Field names live here (documented in etsi_api/admin_openapi.yaml)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from kms.admin import ChangeOutcome
from kms.changes import Change
from kms.config import LinkConfig, LinkPolicy, PeerConfig, SaeConfig, describe_validation_error
from kms.errors import BadRequest
from kms.link_board import LinkHalf
from kms.runtime_config import RuntimeView


# --- request bodies ------------------------------------------------------------------------

def _validated(model: type, data: dict[str, Any], prefix: str = "") -> Any:
    """``model`` validated from ``data``; BadRequest naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message = describe_validation_error(exc, "unknown field")
        raise BadRequest("; ".join(f"{prefix}{part}" for part in message.split("; "))) from None


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")


def sae_args(body: dict[str, Any], this_node: str) -> dict[str, Any]:
    """POST /saes: ``{"id", "node"?, "cert_identity"?}`` (node: this one by default)."""
    node = body.get("node", this_node)
    if not isinstance(node, str) or not node:
        raise BadRequest("node: must be a KME_ID")
    sae = _validated(SaeConfig, {k: v for k, v in body.items() if k != "node"})
    return {"id": sae.id, "node": node, **({"cert_identity": sae.cert_identity} if sae.cert_identity else {})}


def policy_args(link_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PUT /links/{id}/policy: ``{"policy", "fallback_below_bits"?}``."""
    _only(body, {"policy", "fallback_below_bits"})
    from pydantic import TypeAdapter

    try:
        policy = TypeAdapter(LinkPolicy).validate_python(body.get("policy"))
    except ValidationError as exc:
        raise BadRequest(f"policy: {exc.errors()[0]['msg']}") from None
    fallback = body.get("fallback_below_bits")
    if fallback is not None and (isinstance(fallback, bool) or not isinstance(fallback, int) or fallback < 0):
        raise BadRequest("fallback_below_bits: must be an integer >= 0")
    return {"link": link_id, "policy": policy, **({"fallback_below_bits": fallback} if fallback is not None else {})}


def eavesdropper_args(link_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /links/{id}/eavesdropper: ``{"attack": "intercept-resend" | "pns" | null, "fraction"?}``."""
    _only(body, {"attack", "fraction"})
    if "attack" not in body:
        raise BadRequest("attack: required (an attack's name, or null to switch it off)")
    attack, fraction = body["attack"], body.get("fraction", 1.0)
    if attack is None:
        return {"link": link_id, "attack": None}
    if attack not in EAVESDROPPER_ATTACKS:
        raise BadRequest(f"attack: must be one of {', '.join(EAVESDROPPER_ATTACKS)} or null")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise BadRequest("fraction: must be a number above 0 and at most 1")
    return {"link": link_id, "attack": attack, "fraction": float(fraction)}


#: The simulator's eavesdropper models (adapters/qkd_sim/channel.py EVE_MODELS; not
#: imported: a serving process does not load the simulator).
EAVESDROPPER_ATTACKS = ("intercept-resend", "pns")


def node_args(body: dict[str, Any]) -> dict[str, Any]:
    """POST /nodes: a peer entry ``{"kme_id", "url", "saes"?}``."""
    peer = _validated(PeerConfig, body)
    return {"kme_id": peer.kme_id, "url": peer.url, "saes": list(peer.saes)}


def link_args(body: dict[str, Any]) -> dict[str, Any]:
    """POST /links: ``{"link": {...a links[] entry...}, "at"?: {KME_ID: {"source"?, "pqc"?}}}``:
    the link as every node sees it, and the source sections of its ends (seed and key
    files, relative to each end's directory)."""
    _only(body, {"link", "at"})
    link, at = body.get("link"), body.get("at", {})
    if not isinstance(link, dict):
        raise BadRequest("link: required (an object, as an entry of links in a node's config)")
    if not isinstance(at, dict) or not all(isinstance(v, dict) and set(v) <= {"source", "pqc"} for v in at.values()):
        raise BadRequest("at: must map KME_IDs to {source, pqc} sections")
    checked = _validated(LinkConfig, link, "link.")
    if set(at) - set(checked.nodes):
        raise BadRequest(f"at: {sorted(set(at) - set(checked.nodes))[0]} is not an end of the link")
    for node, sections in at.items():
        _validated(LinkConfig, {**link, **sections}, f"at.{node}.")
    return {"link": link, "at": at}


# --- answers -------------------------------------------------------------------------------

def outcome_to_json(outcome: ChangeOutcome) -> dict[str, Any]:
    return {"change": outcome.change.to_dict(), "before": outcome.before, "after": outcome.after,
            "propagation": [{"node": p.node, "required": p.required, "acknowledged": p.acknowledged,
                             "reason": p.reason} for p in outcome.propagation]}


def half_to_json(half: LinkHalf | None, pool: str, role: str, owner: str, now: float) -> dict[str, Any]:
    """One pool half as an operator reads it (``state`` ``unknown`` when never heard of)."""
    if half is None:
        return {"pool": pool, "role": role, "owner": owner, "state": "unknown", "reason": "no report yet",
                "qber": None, "key_rate_bps": None, "available_bits": None, "age_s": None, "fresh": False}
    metrics = half.metrics
    rate = metrics.get("fill_rate_bps", metrics.get("secret_rate_bps"))
    return {"pool": pool, "role": role, "owner": owner, "state": half.state, "reason": half.reason,
            "qber": metrics.get("qber"), "key_rate_bps": rate, "available_bits": half.available_bits,
            "age_s": round(max(0.0, now - half.observed_at), 3), "fresh": half.fresh(now)}


def links_to_json(view: RuntimeView, board: dict) -> dict[str, Any]:
    now = time.time()
    links = []
    for link in view.config.links:
        eve = view.eavesdroppers.get(link.id)
        halves = [half_to_json(board.get((link.pool_id(role), owner)), link.pool_id(role), role, owner, now)
                  for role in link.roles for owner in link.nodes]
        links.append({"id": link.id, "nodes": list(link.nodes), "policy": link.policy, "state": link.state,
                      "fallback_below_bits": link.fallback_below_bits,
                      "source": link.source.get("kind") if "qkd" in link.roles else None,
                      "pqc": link.pqc.get("kind") if link.pqc else None,
                      "eavesdropper": None if eve is None else {"attack": eve.attack, "fraction": eve.fraction},
                      "halves": halves})
    return {"node": view.config.kme_id, "version": view.version, "links": links}


def nodes_to_json(view: RuntimeView, board: dict) -> dict[str, Any]:
    config, now = view.config, time.time()
    heard: dict[str, float] = {}
    for half in board.values():
        heard[half.owner] = max(heard.get(half.owner, 0.0), half.observed_at)
    entries = [(config.kme_id, f"https://{config.listen.host}:{config.listen.port}", [s.id for s in config.saes])]
    entries += [(peer.kme_id, peer.url, list(peer.saes)) for peer in config.peers]
    nodes = [{"kme_id": kme_id, "url": url, "self": kme_id == config.kme_id, "saes": saes,
              "links": [link.id for link in config.links if kme_id in link.nodes],
              "last_heard_s": round(now - heard[kme_id], 3) if kme_id in heard else None}
             for kme_id, url, saes in entries]
    return {"node": config.kme_id, "version": view.version, "digest": view.digest, "changes": len(view.changes),
            "nodes": nodes}


def saes_to_json(view: RuntimeView) -> dict[str, Any]:
    config = view.config
    saes = [{"id": sae.id, "node": config.kme_id, "local": True, "cert_identity": sae.identity} for sae in config.saes]
    saes += [{"id": sae_id, "node": peer.kme_id, "local": False, "cert_identity": None}
             for peer in config.peers for sae_id in peer.saes]
    return {"node": config.kme_id, "saes": saes,
            "removed": [{"id": sae_id, "removed_at": at} for sae_id, at in sorted(view.removed_saes.items())]}


def changes_to_json(view: RuntimeView, changes: list[Change]) -> dict[str, Any]:
    applied = {change.change_id for change in view.changes}
    skipped = {change.change_id: why for change, why in view.skipped}
    return {"node": view.config.kme_id, "version": view.version, "digest": view.digest,
            "changes": [{**change.to_dict(), "applied": change.change_id in applied and change.change_id not in skipped,
                         "skipped": skipped.get(change.change_id)} for change in changes]}
