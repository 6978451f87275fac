"""The ETSI GS QKD 014 V1.1.1 endpoints: status, enc_keys and dec_keys (GET and POST).

Authorization comes first on every route: no key is touched before the caller's
certificate has been mapped to an SAE.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from etsi_api import parsing, responses
from etsi_api.auth import calling_sae
from etsi_api.metrics import record_delivery
from kms.errors import BadRequest
from kms.service import KeyService

bp = Blueprint("etsi014", __name__, url_prefix="/api/v1/keys")


def _service() -> KeyService:
    return current_app.extensions["qkms.service"]


@bp.get("/<path:slave_sae_id>/status")
def status(slave_sae_id: str):
    master = calling_sae()
    if request.args:
        raise BadRequest("status takes no query parameters")
    return jsonify(responses.status(_service().status(master, slave_sae_id)))


@bp.route("/<path:slave_sae_id>/enc_keys", methods=["GET", "POST"])
def enc_keys(slave_sae_id: str):
    master = calling_sae()
    if request.method == "POST":
        data = _post_body("enc_keys", required=False)
    else:
        data = parsing.query_integers(request.args, {"number", "size"})
    key_request = parsing.key_request(data, current_app.config["QKMS_DEFAULT_KEY_SIZE_BITS"])
    keys = _service().enc_keys(master, slave_sae_id, key_request)
    record_delivery("enc_keys", keys, enc=True)
    return jsonify(responses.key_container(keys))


@bp.route("/<path:master_sae_id>/dec_keys", methods=["GET", "POST"])
def dec_keys(master_sae_id: str):
    slave = calling_sae()
    if request.method == "POST":
        key_ids = parsing.key_ids(_post_body("dec_keys", required=True))
    else:
        key_ids = [_single_key_id(request.args)]
    keys = _service().dec_keys(slave, master_sae_id, key_ids)
    record_delivery("dec_keys", keys)
    return jsonify(responses.key_container(keys))


def _post_body(endpoint: str, required: bool) -> dict:
    """The JSON object body of a POST, which takes no query parameters."""
    if request.args:
        raise BadRequest(f"POST {endpoint} takes its parameters in the body")
    return parsing.parse_json_object(request.get_data(cache=False), required=required)


def _single_key_id(args) -> str:
    if set(args) != {"key_ID"} or len(args.getlist("key_ID")) != 1:
        raise BadRequest("GET dec_keys takes exactly one key_ID query parameter")
    return parsing.key_id(args["key_ID"])
