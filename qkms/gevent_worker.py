"""The node's gevent worker: gevent's own WSGI server inside gunicorn.

gunicorn's ``gevent_pywsgi`` worker writes each response, headers and body, in one
TLS record where its ``gevent`` worker makes two writes; on the ETSI round-trip
benchmark it served ~15 % more round trips per second. These subclasses add what a
KME needs: the client certificate of the TLS connection in the WSGI environ (read
once per connection), idle keep-alive connections closed after ``keepalive_s``, and
limits on clients that connect and stall (config/README.md, "Connections that never
authenticate"): a deadline for the TLS handshake, a cap on handshakes in progress
per source address, a deadline for each request's line and headers, and one for the
whole request (``request_timeout_s``: a 503 when it passes). A stopping worker ends
its idle keep-alive connections at once and finishes the requests in progress. TLS
contexts come from :class:`kms.pki.tls.ServerTls`, which follows the CRL file: a new
CRL applies to the next connection, and a connection whose certificate it revokes
gets a 401 and is closed at its next request. Request framing is checked by
``qkms.http_framing``.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIServer

from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from etsi_api.errors import raw_error
from kms.config import ServerConfig, TlsConfig
from kms.errors import QkmsError, Unauthorized, Unavailable
from kms.pki.tls import ServerTls
from qkms.http_framing import FramingHandler
from qkms.rate_limited_log import RateLimitedLog

log = logging.getLogger("qkms.server")


class _HandshakeTimeout(QkmsError):
    message = "TLS handshake not completed in time"


class RequestTimedOut(Unavailable):
    """The request was not served within ``server.request_timeout_s`` (503)."""

    message = "the request was not completed in time"


class _RevokedCertificate(Unauthorized):
    message = "the client certificate has been revoked"


def _handshake_failure(error: BaseException, timeout_s: float) -> str:
    """Why a TLS handshake failed, in a few words (an OpenSSL reason where there is one)."""
    if isinstance(error, _HandshakeTimeout):
        return f"not completed within {timeout_s:g} s"
    reason = getattr(error, "reason", None)
    detail = getattr(error, "verify_message", None)  # e.g. "certificate revoked"
    return (f"{reason}: {detail}" if detail else reason) or error.strerror or type(error).__name__


class _NodeServer(PyWSGIServer):
    """Accepts connections; each must finish its TLS handshake within
    ``handshake_timeout_s``, and one source address may have at most
    ``max_pending_connections_per_ip`` handshakes in progress (in this worker)."""

    handshake_timeout_s: float = 5.0
    max_pending_connections_per_ip: int = 64
    tls_config: TlsConfig | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tls = self.tls_config
        self.tls = ServerTls(tls.cert, tls.key, tls.ca, tls.crl) if tls is not None else None
        self._handshakes: Counter[str] = Counter()
        self._quiet_log = RateLimitedLog(log)
        #: The greenlets of connections idle between requests (waiting for the next one).
        self.idle_connections: set[gevent.Greenlet] = set()

    def close(self) -> None:
        """Stop accepting and end the idle keep-alive connections at once; requests in
        progress finish (gunicorn's ``graceful_timeout``), then their connections close.
        Without this, a client's idle connection (a peer's KM-channel pool, an SAE's)
        holds a stopping worker for the whole graceful timeout."""
        super().close()
        for greenlet in list(self.idle_connections):
            greenlet.kill(block=False)

    def wrap_socket_and_handle(self, client_socket, address):
        source = address[0]
        if self._handshakes[source] >= self.max_pending_connections_per_ip:
            self._quiet_log.warning((source, "refused"), f"connection from {source} closed: "
                                    f"{self._handshakes[source]} TLS handshakes from it in progress")
            return None  # the server closes client_socket
        ssl_socket = self._handshake(client_socket, source)
        if ssl_socket is None:
            return None
        with ssl_socket:
            return self.handle(ssl_socket, address)

    def _handshake(self, client_socket, source: str):
        """The TLS socket after a completed handshake, or None (failure logged, closed)."""
        self._handshakes[source] += 1
        ssl_socket = None
        try:
            with gevent.Timeout(self.handshake_timeout_s, _HandshakeTimeout):
                if not client_socket.recv(1, socket.MSG_PEEK):
                    return None  # closed before saying anything: a port probe, not worth a line
                wrap_socket = self.tls.context().wrap_socket if self.tls is not None else self.wrap_socket
                ssl_socket = wrap_socket(client_socket, do_handshake_on_connect=False, **self.ssl_args)
                ssl_socket.do_handshake()
            return ssl_socket
        except (_HandshakeTimeout, OSError) as error:
            if ssl_socket is not None:
                ssl_socket.close()
            self._quiet_log.warning((source, "failed"), f"TLS handshake from {source} failed: "
                                    f"{_handshake_failure(error, self.handshake_timeout_s)}")
            return None
        finally:
            self._handshakes[source] -= 1
            if not self._handshakes[source]:
                del self._handshakes[source]


class _NodeHandler(FramingHandler):
    """Serves the requests of one TLS connection."""

    idle_timeout_s: float = 75.0
    header_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    _header_deadline: gevent.Timeout | None = None
    _request_deadline: gevent.Timeout | None = None

    def handle(self) -> None:
        # A read or write that waits longer than this (an idle keep-alive connection,
        # a stalled client) ends the connection.
        self.socket.settimeout(self.idle_timeout_s)
        self._peer_cert_der = self.socket.getpeercert(binary_form=True)
        super().handle()

    def handle_one_request(self):
        try:
            return super().handle_one_request()
        except gevent.Timeout as timeout:
            if timeout is not self._header_deadline:
                raise
            return self._refuse(f"request line and headers not received within {self.header_timeout_s:g} s")
        finally:
            self._end_header_deadline()
            self._end_request_deadline()

    def read_requestline(self) -> str:
        # Waiting for the next request is keep-alive idling (idle_timeout_s per read);
        # from its first byte, the request line and headers get header_timeout_s in
        # all, so a client cannot hold the connection by trickling them in.
        # The whole request, body and application included, gets request_timeout_s: its
        # expiry raises RequestTimedOut (an Unavailable) wherever the request waits, so
        # the application's own error handling answers 503 and undoes what it started.
        if self.server.closed:
            return ""  # the worker is stopping: no next request on this connection
        idle, current = self.server.idle_connections, gevent.getcurrent()
        idle.add(current)
        try:
            if not self.rfile.peek(1):
                return ""
        finally:
            idle.discard(current)
        self._header_deadline = gevent.Timeout.start_new(self.header_timeout_s)
        self._request_deadline = gevent.Timeout.start_new(
            self.request_timeout_s, RequestTimedOut(f"request not completed within {self.request_timeout_s:g} s"))
        return super().read_requestline()

    def read_request(self, raw_requestline: str) -> bool:
        try:
            complete = super().read_request(raw_requestline)
        finally:
            self._end_header_deadline()
        if complete and self.server.tls is not None and self.server.tls.is_revoked(self._peer_cert_der):
            raise _RevokedCertificate()
        return complete

    def run_application(self) -> None:
        try:
            super().run_application()
        finally:
            if self._request_deadline is not None and not self._request_deadline.pending:
                # It fired: the body may be half read. Close rather than drain it
                # (pywsgi's flag for an input in an unknown state).
                self.close_connection = True
                self.wsgi_input._chunked_input_error = True

    def _handle_client_error(self, ex: Exception):
        if isinstance(ex, (Unauthorized, Unavailable)):
            log.info("request from %s refused: %s", self.client_address[0], ex.message)
            return str(401 if isinstance(ex, Unauthorized) else 503), raw_error(
                401 if isinstance(ex, Unauthorized) else 503, ex.message)
        return super()._handle_client_error(ex)

    def handle_error(self, t, v, tb) -> None:
        # The request deadline passed outside the application (writing the answer).
        if not isinstance(v, RequestTimedOut):
            return super().handle_error(t, v, tb)
        log.info("request from %s: %s", self.client_address[0], v.message)
        self.close_connection = True
        if not self.response_length and not self.headers_sent:
            self._sendall(raw_error(503, v.message))

    def _end_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.close()
            self._header_deadline = None

    def _end_request_deadline(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.close()
            self._request_deadline = None

    def get_environ(self) -> dict:
        environ = super().get_environ()
        environ[PEER_CERT_ENVIRON_KEY] = self._peer_cert_der
        return environ


class NodeWorker(GeventPyWSGIWorker):
    """gunicorn worker class for ``server.worker_class: gevent``."""

    server_config: ServerConfig = ServerConfig()
    tls_config: TlsConfig | None = None

    @classmethod
    def configured(cls, server: ServerConfig, tls: TlsConfig | None = None) -> type[NodeWorker]:
        """This worker class serving with the settings of ``server`` and ``tls``."""
        return type(cls.__name__, (cls,), {"server_config": server, "tls_config": tls})

    def run(self) -> None:
        server = self.server_config
        self.server_class = type("NodeServer", (_NodeServer,), {
            "handshake_timeout_s": server.handshake_timeout_s,
            "max_pending_connections_per_ip": server.max_pending_connections_per_ip,
            "tls_config": self.tls_config})
        self.wsgi_handler = type("NodeHandler", (_NodeHandler,), {
            "idle_timeout_s": float(server.keepalive_s), "header_timeout_s": server.header_timeout_s,
            "request_timeout_s": server.request_timeout_s})
        super().run()
