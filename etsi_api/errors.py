"""The one place where qkms errors become HTTP statuses and ETSI Error bodies.

ETSI GS QKD 014 defines 400 and 503 with an Error body ({"message", "details"}) and
401. Everything the framework would answer with another 4xx (unknown route, wrong
method, oversized body) is a bad request here; anything unexpected is a 503 with a
generic message, logged in full on the server only. So are requests the HTTP server
rejects before the application sees them (where a plain server answers 414 or 431:
over-long request line or headers; malformed framing): ``raw_bad_request`` is their
whole response. The KM channel (our own protocol) adds 409 for final refusals that a
retry cannot change. SKIP (draft-cisco-skip) keeps the statuses its draft names below
its own paths: 404 for an unknown path, 405 for a method other than GET, 500 for an
internal error; its other errors are ETSI's.
"""

from __future__ import annotations

import json
import logging
import math

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from etsi_api.skip_api import SKIP_SEGMENTS
from kms.errors import BadRequest, Conflict, QkmsError, RateLimited, Unauthorized, Unavailable

log = logging.getLogger("qkms.api")

STATUS_BY_ERROR: tuple[tuple[type[QkmsError], int], ...] = (
    (BadRequest, 400),
    (Unauthorized, 401),
    (Unavailable, 503),
)
#: Statuses only node-to-node interfaces use (ETSI clients never see them).
KM_STATUS_BY_ERROR: tuple[tuple[type[QkmsError], int], ...] = ((Conflict, 409),)
KM_BLUEPRINTS = frozenset({"km"})
GENERIC_UNAVAILABLE = "service unavailable"
DRAIN_LIMIT_BYTES = 1 << 20


def error_body(message: str, details: list | None = None) -> dict:
    """An ETSI Error object."""
    body: dict = {"message": message}
    if details:
        body["details"] = details
    return body


_RAW_REASONS = {400: "Bad Request", 401: "Unauthorized", 503: "Service Unavailable"}


def raw_error(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response (400, 401 or 503) with an ETSI Error body that
    closes the connection, for the HTTP server to send when it refuses a request itself."""
    body = json.dumps(error_body(message), separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {_RAW_REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def raw_bad_request(message: str) -> bytes:
    """``raw_error`` with status 400."""
    return raw_error(400, message)


def status_for(error: QkmsError, node_to_node: bool = False) -> int:
    """HTTP status of a domain error; unmapped domain errors are 503."""
    table = (KM_STATUS_BY_ERROR if node_to_node else ()) + STATUS_BY_ERROR
    for error_type, status in table:
        if isinstance(error, error_type):
            return status
    return 503


def _is_skip_request() -> bool:
    """True for a request below SKIP's paths (matched or not: 404 and 405 match no route)."""
    return request.blueprint == "skip" or request.path.split("/")[1] in SKIP_SEGMENTS


def _domain_error(error: QkmsError):
    status = status_for(error, request.blueprint in KM_BLUEPRINTS)
    if status == 503 and not isinstance(error, Unavailable):
        log.error("unavailable: %s: %s", type(error).__name__, error.message,
                  exc_info=error.__cause__ is not None)
        if _is_skip_request():
            return jsonify(error_body("internal error")), 500
        return jsonify(error_body(GENERIC_UNAVAILABLE)), 503
    if isinstance(error, RateLimited):
        # ETSI 014 has no 429; a 503 with Retry-After (RFC 9110) says when to come back.
        retry_after = {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))}
        return jsonify(error_body(error.message, error.details)), status, retry_after
    return jsonify(error_body(error.message, error.details)), status


def _discard_unread_body() -> None:
    """Read and drop an over-long body (up to DRAIN_LIMIT_BYTES) so the client's
    keep-alive connection stays usable; the server closes it if more is left."""
    stream = request.environ.get("wsgi.input")
    remaining = min(request.content_length or 0, DRAIN_LIMIT_BYTES)
    while stream is not None and remaining > 0:
        chunk = stream.read(min(65536, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def _http_error(error: HTTPException):
    if error.code == 404 and _is_skip_request():
        return jsonify(error_body("unknown path")), 404
    if error.code == 405 and _is_skip_request():
        return jsonify(error_body("only GET is supported")), 405, {"Allow": "GET"}
    if error.code == 413:
        _discard_unread_body()
        return jsonify(error_body("request body too large")), 400
    if error.code == 405:
        message = "method not allowed"
    elif error.code == 404:
        message = "unknown endpoint"
    else:
        message = "bad request"
    return jsonify(error_body(message)), 400


def _unexpected(error: Exception):
    log.exception("unexpected error while serving a request")
    if _is_skip_request():
        return jsonify(error_body("internal error")), 500
    return jsonify(error_body(GENERIC_UNAVAILABLE)), 503


def refuse_implicit_methods() -> None:
    """HEAD and OPTIONS are not part of the API: refuse them before any handler runs."""
    if request.method in ("HEAD", "OPTIONS"):
        if _is_skip_request():
            raise MethodNotAllowed(["GET"])
        raise BadRequest("method not allowed")


def init_app(app: Flask) -> None:
    """Register the error handlers on ``app``."""
    app.register_error_handler(QkmsError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
