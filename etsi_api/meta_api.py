"""Non-ETSI read-only endpoints: the OpenAPI document and a liveness probe."""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response, current_app, jsonify

from etsi_api.auth import calling_sae
from etsi_api.km_api import calling_node
from kms.errors import Unauthorized

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
    calling_sae()
    store_up = current_app.extensions["qkms.store"].ping()
    return jsonify({"store": "up" if store_up else "down"}), 200 if store_up else 503
