"""The mock device's Flask apps: the device itself and its control port.

The device app serves ETSI GS QKD 014 with the node's own blueprint
(``etsi_api.keys_api``, over :class:`~adapters.devices.mock.kme.MockKme`) and errors
(``etsi_api.errors``), the ETSI 004 push-mode endpoints (``qkd004``) and the
peer-device endpoint; faults in force apply before and after each ETSI request. The
control app (its own port: it stays up while the device is down) reads and sets the
faults, for the certificates named in ``control_identities`` only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Blueprint, Flask, current_app, jsonify, request

from adapters.devices.mock.faults import FaultSet, parse_fault
from adapters.devices.mock.kme import MockKme
from etsi_api import errors, keys_api
from etsi_api.auth import peer_certificate_der
from etsi_api.errors import error_body
from etsi_api.parsing import parse_json_object
from kms.errors import BadRequest, Unauthorized, Unavailable
from kms.pki import sae_identity_from_der

#: Blueprints the ETSI-level faults apply to.
FAULTY_BLUEPRINTS = frozenset({"etsi014", "qkd004"})
MALFORMED_BODY = b'{"keys": [{"key_ID": "'

peer_bp = Blueprint("mock_peer", __name__, url_prefix="/mock/v1/peer")
control_bp = Blueprint("mock_control", __name__, url_prefix="/mock/v1")


def caller_name() -> str | None:
    """The subject CN of the caller's certificate."""
    der = peer_certificate_der()
    return sae_identity_from_der(der, "subject_cn") if der else None


def _kme() -> MockKme:
    return current_app.extensions["qkms.service"]


def require_peer_device() -> None:
    """Unauthorized unless the caller is this device's peer device."""
    if caller_name() != _kme().config.peer_name:
        raise Unauthorized("only the peer device may call this")


def _faults_before():
    if request.blueprint not in FAULTY_BLUEPRINTS:
        return None
    faults: FaultSet = current_app.extensions["qkms.mock.faults"]
    slow = faults.get("slow")
    if slow:
        time.sleep(slow.params["delay_s"])
    if faults.get("unavailable"):
        raise Unavailable("device unavailable (mock fault)")
    retry_after = faults.throttled()
    if retry_after is not None:
        return jsonify(error_body("too many requests (mock fault: throttle)")), 503, \
            {"Retry-After": str(max(1, round(retry_after)))}
    return None


def _faults_after(response):
    faults: FaultSet = current_app.extensions["qkms.mock.faults"]
    if request.blueprint == "etsi014" and response.status_code == 200 and faults.get("malformed-json"):
        response.set_data(MALFORMED_BODY)
    return response


@peer_bp.post("/reserve")
def reserve():
    """The peer device carved keys for slaves here: take the same bits and hold them."""
    require_peer_device()
    kme = _kme()
    offer = parse_json_object(request.get_data(cache=False), required=True)
    try:
        refusal = kme.hold_for_peer(offer)
    except (KeyError, TypeError, ValueError):
        raise BadRequest("malformed reservation") from None
    if refusal is not None:
        return jsonify({"message": "segments not held here", **refusal}), 409
    return jsonify({"result": "held"})


def create_device_app(kme: MockKme, faults: FaultSet, extra: tuple[Blueprint, ...] = (),
                      extensions: dict | None = None) -> Flask:
    """The device: ETSI 014 (the node's blueprint), the peer endpoint and ``extra``
    blueprints (ETSI 004), faults applied."""
    app = Flask("qkms-mock-device")
    app.config.update(MAX_CONTENT_LENGTH=65536, QKMS_SAE_ID_FIELD="subject_cn",
                      QKMS_DEFAULT_KEY_SIZE_BITS=kme.config.limits.key_size_bits, PROVIDE_AUTOMATIC_OPTIONS=False)
    app.json.sort_keys = False
    app.extensions["qkms.service"] = kme
    app.extensions["qkms.mock.faults"] = faults
    app.extensions.update(extensions or {})
    errors.init_app(app)
    app.before_request(errors.refuse_implicit_methods)
    app.before_request(_faults_before)
    app.after_request(_faults_after)
    app.register_blueprint(keys_api.bp)
    app.register_blueprint(peer_bp)
    for blueprint in extra:
        app.register_blueprint(blueprint)
    return app


def _operator() -> None:
    if caller_name() not in current_app.extensions["qkms.mock.control_identities"]:
        raise Unauthorized("the control port is for the operator's certificate")


@control_bp.get("/faults")
def get_faults():
    _operator()
    return jsonify({"faults": current_app.extensions["qkms.mock.faults"].active()})


@control_bp.post("/faults")
def change_faults():
    """``{"set": ["slow:delay_s=3", ...], "clear": ["slow", ...] | "all"}``."""
    _operator()
    body = parse_json_object(request.get_data(cache=False), required=True)
    to_set, to_clear = body.get("set", []), body.get("clear", [])
    if not isinstance(to_set, list) or not (to_clear == "all" or isinstance(to_clear, list)):
        raise BadRequest("set must be a list of faults, clear a list of names or \"all\"")
    parsed = [parse_fault(str(spec)) for spec in to_set]
    faults: FaultSet = current_app.extensions["qkms.mock.faults"]
    for name in ([None] if to_clear == "all" else [str(name) for name in to_clear]):
        faults.clear(name)
    for fault in parsed:
        faults.set(fault)
    current_app.extensions["qkms.mock.on_change"]()
    return jsonify({"faults": faults.active()})


@control_bp.get("/state")
def state():
    """The device's name, keys, faults, and its simulation (``feed``: frames run, blocks and bits
    made, still running)."""
    _operator()
    kme = _kme()
    return jsonify({"name": kme.kme_id, "stored_key_count": kme.stored_keys(),
                    "faults": current_app.extensions["qkms.mock.faults"].active(),
                    "feed": current_app.extensions["qkms.mock.feed_state"]()})


def create_control_app(kme: MockKme, faults: FaultSet, on_change: Callable[[], None],
                       feed_state: Callable[[], dict] = dict) -> Flask:
    app = Flask("qkms-mock-device-control")
    app.config.update(MAX_CONTENT_LENGTH=65536, PROVIDE_AUTOMATIC_OPTIONS=False)
    app.extensions.update({"qkms.service": kme, "qkms.mock.faults": faults, "qkms.mock.on_change": on_change,
                           "qkms.mock.feed_state": feed_state,
                           "qkms.mock.control_identities": frozenset(kme.config.control_identities)})
    errors.init_app(app)
    app.register_blueprint(control_bp)
    return app
