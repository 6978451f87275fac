"""The admin API (``/admin/v1``): operators list and change a running network.

Every route first calls :func:`etsi_api.auth.calling_admin` (an admin certificate of
a name in the node's ``admins``; anything else is 401) before reading or changing
anything. Changes go through :class:`kms.admin.NetworkAdmin`: a conflict is a 409, a
change the configuration cannot take a 400 naming the setting, and either way
nothing is stored. Document: etsi_api/admin_openapi.yaml (docs/operations.md).
"""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response, current_app, jsonify, request

from etsi_api import admin_wire
from etsi_api.auth import calling_admin
from etsi_api.parsing import parse_json_object
from kms.errors import Unavailable
from kms.node import NodeRuntime

bp = Blueprint("admin", __name__, url_prefix="/admin/v1")


def _runtime() -> NodeRuntime:
    runtime = current_app.extensions.get("qkms.runtime")
    if runtime is None:
        raise Unavailable("this node runs without an admin API")
    return runtime


def _body() -> dict:
    return parse_json_object(request.get_data(cache=False), required=True)


def _change(admin: str, op: str, args: dict):
    outcome = _runtime().admin.change(admin, op, args)
    return jsonify(admin_wire.outcome_to_json(outcome))


@bp.get("/nodes")
def nodes():
    calling_admin()
    view, node = _runtime().current()
    return jsonify(admin_wire.nodes_to_json(view, node.storage.board.read()))


@bp.post("/nodes")
def add_node():
    admin = calling_admin()
    return _change(admin, "put-peer", admin_wire.node_args(_body()))


@bp.get("/links")
def links():
    calling_admin()
    view, node = _runtime().current()
    return jsonify(admin_wire.links_to_json(view, node.storage.board.read()))


@bp.post("/links")
def add_link():
    admin = calling_admin()
    return _change(admin, "put-link", admin_wire.link_args(_body()))


@bp.put("/links/<link_id>/policy")
def set_policy(link_id: str):
    admin = calling_admin()
    return _change(admin, "set-policy", admin_wire.policy_args(link_id, _body()))


LINK_STATES = {"pause": "paused", "resume": "active", "drain": "draining"}


@bp.post("/links/<link_id>/<any(pause, resume, drain):action>")
def set_link_state(link_id: str, action: str):
    admin = calling_admin()
    return _change(admin, "set-link-state", {"link": link_id, "state": LINK_STATES[action]})


@bp.post("/links/<link_id>/destroy")
def destroy_pools(link_id: str):
    admin = calling_admin()
    return _change(admin, "destroy-pools", {"link": link_id})


@bp.post("/links/<link_id>/eavesdropper")
def eavesdropper(link_id: str):
    admin = calling_admin()
    return _change(admin, "set-eavesdropper", admin_wire.eavesdropper_args(link_id, _body()))


@bp.get("/saes")
def saes():
    calling_admin()
    view, _ = _runtime().current()
    return jsonify(admin_wire.saes_to_json(view))


@bp.post("/saes")
def add_sae():
    admin = calling_admin()
    return _change(admin, "put-sae", admin_wire.sae_args(_body(), _runtime().runtime.base.kme_id))


@bp.delete("/saes/<sae_id>")
def remove_sae(sae_id: str):
    admin = calling_admin()
    return _change(admin, "remove-sae", {"id": sae_id})


@bp.get("/changes")
def changes():
    calling_admin()
    runtime = _runtime()
    view, _ = runtime.current()
    _, held = runtime.runtime.log.read()
    return jsonify(admin_wire.changes_to_json(view, held))


@bp.get("/openapi.yaml")
def openapi_document():
    calling_admin()
    return Response(files("etsi_api").joinpath("admin_openapi.yaml").read_text(), mimetype="application/yaml")
