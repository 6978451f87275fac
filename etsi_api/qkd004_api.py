"""ETSI GS QKD 004 push mode, the KMS side: a QKD device pushes key material here.

``POST /api/v1/qkd/etsi004/key-material`` (the AIT push-mode API,
``etsi_api/qkd004_openapi.yaml``) takes ``{status, index, key_buffer, metadata:
{size, buffer: {key_stream_id}}}`` and answers 201 ``{"status": 0}``. The caller is
a device, known by the name in its client certificate (subject CN or a SAN): the link
whose source takes that device's pushes gets the chunk (``kms.link_exchange``); any
other caller gets 401. A chunk with a status other than 0 carries no key and is only
acknowledged. Errors go through ``etsi_api.errors``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from etsi_api.auth import peer_certificate_der
from etsi_api.parsing import parse_json_object
from kms.errors import BadRequest, Unauthorized
from kms.keys import KeyBlock
from kms.pki import certificate_names_from_der

log = logging.getLogger("qkms.api.qkd004")

bp = Blueprint("qkd004_kms", __name__, url_prefix="/api/v1/qkd/etsi004")
UINT32_MAX = 2**32 - 1
MAX_KEY_STREAM_ID_CHARS = 64


def _uint32(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT32_MAX:
        raise BadRequest(f"{name} must be a uint32")
    return value


def _key_stream_id(metadata: Any) -> str:
    buffer = metadata.get("buffer") if isinstance(metadata, dict) else None
    ksid = buffer.get("key_stream_id") if isinstance(buffer, dict) else None
    if not isinstance(ksid, str) or not 0 < len(ksid) <= MAX_KEY_STREAM_ID_CHARS or ":" in ksid:
        raise BadRequest("metadata.buffer.key_stream_id must name the key stream")
    return ksid


def _key_buffer(value: Any) -> bytes:
    try:
        material = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        material = b""
    if not material:
        raise BadRequest("key_buffer must be non-empty standard Base64")
    return material


@bp.post("/key-material")
def key_material():
    der = peer_certificate_der()
    names = certificate_names_from_der(der) if der else ()
    responders = current_app.extensions.get("qkms.responders")
    if not names or responders is None:
        raise Unauthorized("only a QKD device of this node's links may push key material")
    body = parse_json_object(request.get_data(cache=False), required=True)
    status, index = _uint32(body.get("status"), "status"), _uint32(body.get("index"), "index")
    ksid = _key_stream_id(body.get("metadata"))
    if status != 0:
        log.warning("device %s pushed status %d for key stream %s (no key)", names[0], status, ksid)
        return jsonify({"status": 0}), 201
    responders.pushed(names, KeyBlock(f"{ksid}:{index}", _key_buffer(body.get("key_buffer")), index))
    return jsonify({"status": 0}), 201
