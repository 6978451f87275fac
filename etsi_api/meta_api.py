"""Non-ETSI read-only endpoints: the OpenAPI document and a liveness probe."""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response, current_app, jsonify

from etsi_api.auth import calling_sae
from etsi_api.km_api import calling_node
from kms.errors import StoreError, Unauthorized

bp = Blueprint("meta", __name__)


@bp.get("/api/v1/openapi.yaml")
def openapi_document():
    calling_sae()
    text = files("etsi_api").joinpath("openapi.yaml").read_text()
    return Response(text, mimetype="application/yaml")


@bp.get("/km/v1/openapi.yaml")
def km_openapi_document():
    """The KM channel's document: for configured peers (node certificate, or the node's
    own, as for GET /km/v1/links) and for this node's SAEs (as /api/v1/openapi.yaml)."""
    try:
        node = calling_node()
    except Unauthorized:
        calling_sae()
    else:
        config = current_app.config["QKMS_NODE_CONFIG"]
        if node != config.kme_id and config.peer(node) is None:
            raise Unauthorized("caller is not a peer of this node")
    text = files("etsi_api").joinpath("km_openapi.yaml").read_text()
    return Response(text, mimetype="application/yaml")


@bp.get("/healthz")
def healthz():
    """200 when the store answers and, on a node with links, the link manager that fills
    the pools is alive (its heartbeat is current); 503 otherwise."""
    calling_sae()
    store_up = current_app.extensions["qkms.store"].ping()
    body = {"store": "up" if store_up else "down"}
    try:
        link_manager = current_app.extensions["qkms.service"].link_manager_status()
    except StoreError:
        body["link_manager"] = {"state": "unknown"}
        return jsonify(body), 503
    body["link_manager"] = link_manager.to_dict()
    return jsonify(body), 200 if store_up and link_manager.healthy else 503
