"""JSON of the KM channel (node to node). Field names live here and nowhere else."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from kms.changes import MAX_CHANGES, Change
from kms.errors import BadRequest
from kms.link_board import LinkHalf
from kms.link_manager_state import LinkManagerStatus
from kms.pools import Segment
from kms.relay import HopKey, RelayRequest
from kms.routing import Hop


def relay_to_json(request: RelayRequest) -> dict[str, Any]:
    """A relay request; ``hop_pools`` and a key's ``pqc_segments`` only where they say
    more than a QKD-only relay (so peers without link policies read the rest as before)."""
    body = {
        "request_id": request.request_id,
        "route": [{"link": h.link_id, "from": h.sender, "to": h.receiver} for h in request.route],
        "hop_index": request.hop_index,
        "master_SAE_ID": request.master_id,
        "slave_SAE_IDs": sorted(request.slave_ids),
        "size": request.size_bits,
        "ttl_s": request.ttl_s,
        "keys": [_hop_key_to_json(k) for k in request.keys],
    }
    if any(material != "qkd" for material in request.hop_pools):
        body["hop_pools"] = list(request.hop_pools)
    return body


def _hop_key_to_json(key: HopKey) -> dict[str, Any]:
    out = {"key_ID": key.key_id, "segments": [s.to_list() for s in key.segments],
           "otp": base64.b64encode(key.ciphertext).decode() if key.ciphertext is not None else None}
    if key.pqc_segments:
        out["pqc_segments"] = [s.to_list() for s in key.pqc_segments]
    return out


def relay_from_json(data: Any) -> RelayRequest:
    """Parse a relay request's structure; any malformation is a BadRequest (and nothing
    is touched). Whether this node accepts it is checked once, by kms.relay.check_relay."""
    try:
        route = tuple(Hop(_str(h["link"]), _str(h["from"]), _str(h["to"])) for h in _list(data["route"]))
        request = RelayRequest(
            request_id=_str(data["request_id"]), route=route, hop_index=_int(data["hop_index"]),
            master_id=_str(data["master_SAE_ID"]), slave_ids=frozenset(map(_str, _list(data["slave_SAE_IDs"]))),
            size_bits=_int(data["size"]), ttl_s=_int(data["ttl_s"]),
            keys=tuple(_hop_key(k) for k in _list(data["keys"])),
            hop_pools=tuple(map(_str, _list(data.get("hop_pools", [])))))
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise BadRequest(f"malformed relay request ({type(exc).__name__})") from None
    return request


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise TypeError("expected an array")
    return value


def _hop_key(item: Any) -> HopKey:
    if not isinstance(item, dict):
        raise TypeError("a key must be an object")
    otp = item.get("otp")
    return HopKey(_str(item["key_ID"]), tuple(Segment.from_list(s) for s in _list(item["segments"])),
                  base64.b64decode(otp, validate=True) if otp is not None else None,
                  tuple(Segment.from_list(s) for s in _list(item.get("pqc_segments", []))))


def halves_to_json(halves: list[LinkHalf], link_manager: LinkManagerStatus | None = None,
                   now: float | None = None) -> dict[str, Any]:
    """A GET /links answer at unix time ``now`` (default: this node's clock);
    ``link_manager`` (the node's own, for its operator) is optional."""
    body: dict[str, Any] = {
        "links": [{"link": h.link_id, "owner": h.owner, "available_bits": h.available_bits,
                   "state": h.state, "reason": h.reason, "metrics": h.metrics,
                   "observed_at": h.observed_at, "sources": list(h.sources),
                   "algorithms": list(h.algorithms),
                   "held_peer_sequences": list(h.held_peer_sequences),
                   "owner_observed_at": h.version} for h in halves],
        "now": time.time() if now is None else now}
    if link_manager is not None:
        body["link_manager"] = link_manager.to_dict()
    return body


def halves_from_json(data: Any, received_at: float | None = None) -> list[LinkHalf]:
    """The halves of a GET /links answer. With ``received_at`` (the reader's clock when
    the answer came) each ``observed_at`` is moved onto the reader's clock by the
    answer's own ``now``: a half's age is measured on the clock that stamped it, so a
    peer whose clock is off is neither taken for stale nor kept fresh too long."""
    shift = 0.0 if received_at is None or "now" not in data else received_at - float(data["now"])
    return [LinkHalf(h["link"], h["owner"], int(h["available_bits"]), h["state"], h["reason"],
                     dict(h["metrics"]), float(h["observed_at"]) + shift, tuple(h.get("sources", ())),
                     tuple(h.get("algorithms", ())), tuple(int(s) for s in h.get("held_peer_sequences", ())),
                     _owner_time(h, float(h["observed_at"]) + shift))
            for h in data["links"]]


def _owner_time(half: dict, observed_at: float) -> float | None:
    """The half's version on its owner's clock; None when it is ``observed_at`` itself."""
    owner = float(half.get("owner_observed_at", half["observed_at"]))
    return None if owner == observed_at else owner


def link_manager_from_json(data: Any) -> LinkManagerStatus | None:
    """The link manager state in a GET /links answer, None if it carries none."""
    raw = data.get("link_manager") if isinstance(data, dict) else None
    return None if raw is None else LinkManagerStatus.from_dict(raw)


def halves_push_from_json(data: Any, sender: str) -> list[LinkHalf]:
    """The halves of a POST /links push from neighbour ``sender``; BadRequest if it is
    malformed (nothing is kept). The sender's own halves are moved onto this node's
    clock by the push's ``now`` (so a neighbour whose clock is off is neither stale nor
    fresh too long); halves it passes on keep their times, because shifting them at
    every hop would make a half look fresher each time it went round a cycle of the
    network. Every half keeps its owner's own time as its version (``owner_observed_at``),
    which is what orders it against the copy this node holds."""
    try:
        shifted = {(h.link_id, h.owner): h for h in halves_from_json(data, time.time())}
        return [shifted[(h.link_id, h.owner)] if h.owner == sender else h for h in halves_from_json(data)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRequest(f"malformed link state ({type(exc).__name__})") from None


def changes_to_json(changes: list[Change], changes_digest: str | None = None) -> dict[str, Any]:
    """A list of admin changes (GET and POST /changes), with the sender's digest."""
    body: dict[str, Any] = {"changes": [change.to_dict() for change in changes]}
    if changes_digest is not None:
        body["digest"] = changes_digest
    return body


def changes_from_json(data: Any) -> list[Change]:
    """The admin changes of a body; BadRequest naming the first malformed one."""
    items = data.get("changes") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) > MAX_CHANGES:
        raise BadRequest(f"changes must be an array of at most {MAX_CHANGES} changes")
    changes = []
    for index, item in enumerate(items):
        try:
            changes.append(Change.from_dict(item))
        except ValueError as exc:
            raise BadRequest(f"changes[{index}]: {exc}") from None
    return changes
