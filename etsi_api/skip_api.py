"""Cisco's Secure Key Integration Protocol (draft-cisco-skip-02) on a qkms node.

SKIP's system IDs are SAE_IDs: ``localSystemID`` is the caller (from its client
certificate, as for ETSI 014), ``remoteSystemID`` the peer SAE. ``GET /key`` is an
ETSI ``enc_keys`` of one key with the caller as master; ``GET /key/{keyId}`` is a
``dec_keys`` with the caller as slave, so SKIP keys obey the same authorization,
exactly-once and provenance rules, and an ETSI master can hand a key to a SKIP slave
(and back). ``keyId`` is the key_ID's 128 bits in hex (a UUID without dashes); keys
and entropy are hex. Errors become HTTP only in ``etsi_api.errors``.
"""

from __future__ import annotations

import os
import uuid

from flask import Blueprint, current_app, jsonify, request

from etsi_api import parsing
from etsi_api.auth import calling_sae
from kms.errors import BadRequest
from kms.keys import KeyRequest
from kms.service import KeyService

bp = Blueprint("skip", __name__)

#: First path segments of SKIP's methods (etsi_api.errors answers SKIP's way below them).
SKIP_SEGMENTS = frozenset({"capabilities", "key", "entropy"})
ALGORITHM = "qkms QKD/PQC relay"
DEFAULT_ENTROPY_BITS = 256


def _service() -> KeyService:
    return current_app.extensions["qkms.service"]


@bp.get("/capabilities")
def capabilities():
    local = calling_sae()
    _only(set())
    config = current_app.config["QKMS_NODE_CONFIG"]
    remotes = [sae.id for sae in config.saes] + [sae for peer in config.peers for sae in peer.saes]
    return jsonify({"entropy": True, "key": True, "algorithm": ALGORITHM,
                    "localSystemID": local, "remoteSystemID": [sae for sae in remotes if sae != local]})


@bp.get("/key")
def new_key():
    master = calling_sae()
    remote = _remote_system_id({"remoteSystemID", "size"})
    args = request.args.copy()
    args.poplist("remoteSystemID")
    size_bits = parsing.query_integers(args, {"size"}).get("size", current_app.config["QKMS_DEFAULT_KEY_SIZE_BITS"])
    (key,) = _service().enc_keys(master, remote, KeyRequest(number=1, size_bits=size_bits))
    return jsonify(_key_body(key))


@bp.get("/key/<key_id>")
def existing_key(key_id: str):
    slave = calling_sae()
    remote = _remote_system_id({"remoteSystemID"})
    (key,) = _service().dec_keys(slave, remote, [key_id_from_hex(key_id)])
    return jsonify(_key_body(key))


@bp.get("/entropy")
def entropy():
    calling_sae()
    _only({"minentropy"})
    bits = parsing.query_integers(request.args, {"minentropy"}).get("minentropy", DEFAULT_ENTROPY_BITS)
    limits = current_app.config["QKMS_NODE_CONFIG"].limits
    if bits % 8 or not 8 <= bits <= limits.max_key_size_bits:
        raise BadRequest(f"minentropy must be a multiple of 8 from 8 to {limits.max_key_size_bits}")
    return jsonify({"randomStr": os.urandom(bits // 8).hex(), "minentropy": bits})


def key_id_from_hex(key_id: str) -> str:
    """The ETSI key_ID (a UUID) of a SKIP keyId: exactly 32 hex digits."""
    if len(key_id) != 32 or not all(c in "0123456789abcdefABCDEF" for c in key_id):
        raise BadRequest("keyId must be 32 hexadecimal digits", [{"keyId": key_id[:64]}])
    return str(uuid.UUID(hex=key_id))


def _key_body(key) -> dict:
    return {"keyId": uuid.UUID(key.key_id).hex, "key": key.material.hex(),
            "qkms_provenance": key.provenance.to_dict()}


def _only(allowed: set[str]) -> None:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter: {', '.join(unknown)}", [{"unknown_fields": unknown}])


def _remote_system_id(allowed: set[str]) -> str:
    _only(allowed)
    values = request.args.getlist("remoteSystemID")
    if len(values) != 1 or not values[0]:
        raise BadRequest("remoteSystemID must be given once")
    return values[0]
