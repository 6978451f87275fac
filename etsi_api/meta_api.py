"""Non-ETSI read-only endpoints: the OpenAPI document and a liveness probe."""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response, current_app, jsonify

from etsi_api.auth import calling_sae

bp = Blueprint("meta", __name__)


@bp.get("/api/v1/openapi.yaml")
def openapi_document():
    calling_sae()
    text = files("etsi_api").joinpath("openapi.yaml").read_text()
    return Response(text, mimetype="application/yaml")


@bp.get("/healthz")
def healthz():
    calling_sae()
    store_up = current_app.extensions["qkms.store"].ping()
    return jsonify({"store": "up" if store_up else "down"}), 200 if store_up else 503
