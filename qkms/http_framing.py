"""HTTP/1.1 request framing as the node accepts it, checked below the WSGI application.

gevent's pywsgi answers an over-long request line with 414 and other malformed
requests with 400, both without a body, and lets through what a stricter parser
refuses: a repeated Content-Length (the last one wins), Content-Length together with
Transfer-Encoding, a Transfer-Encoding it does not decode, ``Content-Length: +2``.
Requests framed ambiguously are how requests are smuggled past a proxy, and a body
read with the wrong framing would become the next request. This handler refuses all
of them with a 400 ETSI Error (``etsi_api.errors.raw_bad_request``) and closes the
connection before any application code runs.
"""

from __future__ import annotations

import http.client
import logging
import re

from gunicorn.workers.ggevent import PyWSGIHandler

from etsi_api.errors import raw_bad_request
from kms.errors import BadRequest

log = logging.getLogger("qkms.server")

_DECIMAL = re.compile(r"[0-9]{1,18}")


class RejectedRequest(BadRequest):
    """A request refused by the HTTP server itself, before the application."""


def check_framing(headers: http.client.HTTPMessage) -> None:
    """RejectedRequest unless the body's length is given exactly one unambiguous way."""
    lengths = headers.get_all("Content-Length") or []
    encodings = headers.get_all("Transfer-Encoding") or []
    if len(lengths) > 1:
        raise RejectedRequest("Content-Length given more than once")
    if lengths and encodings:
        raise RejectedRequest("Content-Length and Transfer-Encoding given together")
    if encodings and [value.strip().lower() for value in encodings] != ["chunked"]:
        raise RejectedRequest("unsupported Transfer-Encoding")
    if lengths and not _DECIMAL.fullmatch(lengths[0].strip()):
        raise RejectedRequest("Content-Length must be a decimal number")


class FramingHandler(PyWSGIHandler):
    """pywsgi's handler with strict framing and ETSI Error bodies on its own refusals."""

    def MessageClass(self, *args) -> http.client.HTTPMessage:
        try:
            headers = super().MessageClass(*args)
        except http.client.HTTPException:  # http.client refuses more than 100 headers
            raise RejectedRequest("too many request headers") from None
        if headers.status:  # the one problem pywsgi reports this way: a line over 64 KiB
            raise RejectedRequest("request header line too long")
        check_framing(headers)
        return headers

    def handle_one_request(self):
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] == "414":
            return self._refuse("request line too long")
        return result

    def _handle_client_error(self, ex: Exception):
        # pywsgi's hook for requests it cannot parse; its own version prints a
        # traceback for some of them and answers without a body.
        return self._refuse(ex.message if isinstance(ex, RejectedRequest) else "malformed HTTP request")

    def _refuse(self, message: str) -> tuple[str, bytes]:
        log.info("bad request from %s: %s", self.client_address[0], message)
        return "400", raw_bad_request(message)
