"""The KM channel: node-to-node endpoints, for peer KMEs only (node certificates).

Every request is authenticated by the caller's node certificate (see
:func:`kms.pki.node_identity_from_der`) and must come from a configured peer; relay
hops must come from the hop's sender and pool syncs from the pool half's owner. A
refusal that retrying cannot change (a chain already failed or aborted, pools out of
step) is a 409; only a 503 is worth a retry.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from etsi_api import km_wire
from etsi_api.auth import peer_certificate_der
from etsi_api.parsing import parse_json_object
from kms.admin import merge_changes
from kms.errors import BadRequest, Unauthorized, Unavailable
from kms.network import KeyNetwork
from kms.node import NodeRuntime
from kms.pki import node_identity_from_der
from kms.relay import relay_body_limit_bytes

bp = Blueprint("km", __name__, url_prefix="/km/v1")

#: Largest link-state push or list of admin changes a node accepts (a push of every
#: half of a network of a few thousand links fits).
GOSSIP_BODY_LIMIT_BYTES = 8 * 1024 * 1024


def _network() -> KeyNetwork:
    network = current_app.extensions.get("qkms.network")
    if network is None:
        raise Unauthorized("this node has no KM channel")
    return network


def calling_node() -> str:
    """The KME_ID in the caller's node certificate; Unauthorized without one."""
    der = peer_certificate_der()
    kme_id = node_identity_from_der(der) if der else None
    if kme_id is None:
        raise Unauthorized("a node certificate is required")
    return kme_id


def calling_peer() -> str:
    """The KME_ID of the calling node; Unauthorized unless it is a configured peer."""
    kme_id = calling_node()
    if current_app.config["QKMS_NODE_CONFIG"].peer(kme_id) is None:
        raise Unauthorized("caller is not a peer of this node")
    return kme_id


def _body() -> dict:
    return parse_json_object(request.get_data(cache=False), required=True)


def _runtime() -> NodeRuntime:
    runtime = current_app.extensions.get("qkms.runtime")
    if runtime is None:
        raise Unavailable("this node keeps no admin changes")
    return runtime


@bp.post("/relay")
def relay():
    peer = calling_peer()
    # A relay of the largest request this node's limits allow must fit.
    request.max_content_length = relay_body_limit_bytes(current_app.config["QKMS_NODE_CONFIG"].limits)
    relay_request = km_wire.relay_from_json(_body())
    _network().receive(relay_request, peer)
    return jsonify({"request_id": relay_request.request_id, "result": "reserved"
                    if relay_request.is_last_hop else "forwarded"})


@bp.post("/abort")
def abort():
    calling_peer()
    request_id = _body().get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise BadRequest("request_id must be a non-empty string")
    return jsonify({"request_id": request_id, "destroyed": _network().abort(request_id)})


@bp.post("/pool/sync")
def pool_sync():
    peer = calling_peer()
    body = _body()
    link_id, owner = body.get("link"), body.get("owner")
    sequence, offset = body.get("sequence"), body.get("offset")
    if owner != peer or not all(isinstance(v, int) and v >= 0 for v in (sequence, offset)):
        raise BadRequest("pool sync names the caller's own half and a non-negative position")
    dropped = _network().discard_before(link_id, owner, sequence, offset)
    return jsonify({"link": link_id, "owner": owner, "discarded_bytes": dropped})


@bp.get("/links")
def links():
    """This node's own link halves, for peers; with ``all=1`` every half it knows of and
    the state of its link manager. Peers and the node itself (its operator, holding its
    certificate) may read it."""
    caller = calling_node()
    config = current_app.config["QKMS_NODE_CONFIG"]
    if caller != config.kme_id and config.peer(caller) is None:
        raise Unauthorized("caller is not a peer of this node")
    network = _network()
    if request.args.get("all") != "1":
        return jsonify(km_wire.halves_to_json(network.local_halves()))
    link_manager = current_app.extensions["qkms.service"].link_manager_status()
    return jsonify(km_wire.halves_to_json(network.known_halves(), link_manager))


@bp.post("/links")
def push_links():
    """A neighbour's link-state push (kms/link_gossip.py): the halves this node keeps,
    and this node's change-log digest for the neighbour to compare with its own."""
    peer = calling_peer()
    request.max_content_length = GOSSIP_BODY_LIMIT_BYTES
    halves = km_wire.halves_push_from_json(_body(), peer)
    accepted = _network().accept_halves(halves, peer)
    view, _ = _runtime().current()
    return jsonify({"accepted": accepted, "changes_digest": view.digest})


@bp.get("/changes")
def changes():
    """Every admin change this node holds (a neighbour whose digest differs pulls them)."""
    calling_peer()
    view, _ = _runtime().current()
    _, held = _runtime().runtime.log.read()
    return jsonify(km_wire.changes_to_json(held, view.digest))


@bp.post("/changes")
def push_changes():
    """Admin changes pushed by the node an administrator made them at (or passed on)."""
    peer = calling_peer()
    request.max_content_length = GOSSIP_BODY_LIMIT_BYTES
    runtime = _runtime()
    added = merge_changes(runtime.runtime, km_wire.changes_from_json(_body()), peer)
    return jsonify({"added": len(added), "digest": runtime.runtime.view().digest})


@bp.post("/links/<link_id>/exchange")
def link_exchange(link_id: str):
    """A message from the other end of one of this node's links to its key source."""
    peer = calling_peer()
    responders = current_app.extensions.get("qkms.responders")
    if responders is None:
        raise BadRequest("this node has no links")
    return jsonify(responders.respond(link_id, peer, _body()))
