"""The dashboard's JSON documents, built from the node's config and monitoring data."""

from __future__ import annotations

import math
import time
from typing import Any

from etsi_api.monitoring import Monitoring
from kms.config import NodeConfig
from kms.errors import BadRequest
from kms.link_board import LinkHalf
from kms.link_manager_state import LinkManagerStatus


def state_view(config: NodeConfig, monitoring: Monitoring, link_manager: LinkManagerStatus,
               since: float) -> dict[str, Any]:
    """Topology (every node and link of the configured network, each link half as this
    node knows it), samples and alarms newer than ``since``, and ``now`` to ask from next."""
    now = time.time()
    board = monitoring.board.read()
    samples = monitoring.telemetry.samples(since)
    return {
        "node": config.kme_id,
        "now": now,
        "nodes": _nodes(config),
        "links": [_link(config, link, board, now) for link in config.links],
        "link_manager": link_manager.to_dict(),
        "samples": {f"{link}|{owner}": [[s.at, s.qber, s.secret_rate_bps, s.available_bits, s.state]
                                        for s in series]
                    for (link, owner), series in sorted(samples.items()) if series},
        "alarms": [alarm.to_dict() for alarm in monitoring.telemetry.alarms(since)],
    }


def _nodes(config: NodeConfig) -> list[dict[str, Any]]:
    own = {"id": config.kme_id, "self": True, "saes": [sae.id for sae in config.saes]}
    return [own, *({"id": peer.kme_id, "self": False, "saes": list(peer.saes)} for peer in config.peers)]


def _link(config, link, board: dict[tuple[str, str], LinkHalf], now: float) -> dict[str, Any]:
    halves = []
    for role in link.roles:
        pool = link.pool_id(role)
        for owner in link.nodes:
            half = board.get((pool, owner))
            halves.append(_half(pool, role, owner, half, now))
    return {"id": link.id, "nodes": list(link.nodes), "policy": link.policy,
            "kinds": [link.section(role)["kind"] for role in link.roles],
            "local": config.kme_id in link.nodes, "state": _worst(halves), "halves": halves}


def _half(pool: str, role: str, owner: str, half: LinkHalf | None, now: float) -> dict[str, Any]:
    if half is None:
        return {"pool": pool, "role": role, "owner": owner, "state": "unknown", "reason": "not reported to this node"}
    fresh = half.fresh(now)
    return {"pool": pool, "role": role, "owner": owner, "state": half.state if fresh else "stale",
            "reason": half.reason if fresh else f"last report {now - half.observed_at:.0f} s ago: {half.reason}",
            "available_bits": half.available_bits, "observed_at": half.observed_at,
            "metrics": {k: v for k, v in half.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)},
            "sources": list(half.sources)}


#: The link's colour on the map: its worst known half (unknown halves do not count).
_ORDER = ("down", "stale", "degraded", "up")


def _worst(halves: list[dict[str, Any]]) -> str:
    known = [h["state"] for h in halves if h["state"] in _ORDER]
    return min(known, key=_ORDER.index) if known else "unknown"


def rate_curve_view(config: NodeConfig, monitoring: Monitoring, link_id: str) -> dict[str, Any]:
    """A simulated link's rate-versus-distance curve with its measured operating point."""
    link = next((link for link in config.links if link.id == link_id), None)
    if link is None:
        raise BadRequest("unknown link", [{"link": link_id}])
    curve = monitoring.telemetry.rate_curve(link_id)
    if curve is None:
        raise BadRequest("no rate-versus-distance curve for this link (a simulated link this node is an end of "
                         "has one once its link manager has computed it)", [{"link": link_id}])
    board = monitoring.board.read()
    measured = [half.metrics.get("secret_bits_per_pulse") for owner in link.nodes
                if (half := board.get((link.pool_id("qkd"), owner))) is not None]
    measured = [m for m in measured if isinstance(m, (int, float)) and math.isfinite(m)]
    return {"link": link_id, **curve, "measured_bits_per_pulse": max(measured) if measured else None}
