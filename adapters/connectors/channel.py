"""The agent pair's channel: HTTPS with mutual TLS, each agent presenting its SAE
certificate (issued by the network's CA), each checking that the other's certificate
names the peer SAE it was configured with. It carries key_IDs and confirmation values,
never keys. Standard library only (http.server, http.client, ssl).

    POST /connect/v1/announce   initiator -> responder   (the peer SAE only)
    POST /connect/v1/withdraw   initiator -> responder   (the peer SAE only)
    GET  /connect/v1/status     any certificate of the CA (monitoring, firewalls)
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from adapters.connectors.errors import ConnectorError
from kms.errors import BadRequest
from kms.pki import sae_identity_from_der
from kms.pki.tls import harden

log = logging.getLogger("qkms.connect")

ANNOUNCE_PATH = "/connect/v1/announce"
WITHDRAW_PATH = "/connect/v1/withdraw"
STATUS_PATH = "/connect/v1/status"
MAX_BODY_BYTES = 16 * 1024


@dataclass(frozen=True)
class SaeCredentials:
    """An agent's SAE certificate and key, the CA, and the certificate field naming SAEs."""

    cert: Path
    key: Path
    ca: Path
    id_field: str = "subject_cn"

    def context(self, server_side: bool) -> ssl.SSLContext:
        """The server verifies client certificates as usual. SAE certificates are for TLS
        clients (no serverAuth), so a client checks the serving agent's certificate
        itself, with ``verified_identity`` after the handshake (TLS has proven that the
        server holds the certificate's key)."""
        context = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT))
        context.load_cert_chain(str(self.cert), str(self.key))
        context.check_hostname = False  # agents are named by SAE_ID, not by host name
        if server_side:
            context.load_verify_locations(cafile=str(self.ca))
            context.verify_mode = ssl.CERT_REQUIRED
        else:
            context.verify_mode = ssl.CERT_NONE
        return context

    def identity(self, der: bytes | None) -> str | None:
        """The SAE_ID of a certificate the TLS server already verified."""
        return sae_identity_from_der(der, self.id_field) if der else None

    def verified_identity(self, der: bytes | None) -> str:
        """The SAE_ID of a serving agent's certificate, after checking it as an SAE
        certificate of our CA (chain, validity, clientAuth); ConnectorError otherwise."""
        if not der:
            raise ConnectorError("the peer agent presented no certificate")
        try:
            ca = x509.load_pem_x509_certificate(self.ca.read_bytes())
            verifier = PolicyBuilder().store(Store([ca])).build_client_verifier()
            verifier.verify(x509.load_der_x509_certificate(der), [])
        except (ValueError, VerificationError) as exc:
            raise ConnectorError(f"the peer agent's certificate is not an SAE certificate of our CA: {exc}") from None
        return self.identity(der) or ""


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as a tuple."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdecimal():
        raise ConnectorError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


Handler = Callable[[dict], dict]


class ChannelServer:
    """Serves the peer's POSTs and everyone's status in threads, over mutual TLS."""

    def __init__(self, listen: tuple[str, int], credentials: SaeCredentials, peer_sae: str,
                 routes: dict[str, Handler], status: Callable[[], dict]):
        self._server = _TlsServer(listen, _RequestHandler, credentials.context(server_side=True))
        self._server.channel = (credentials, peer_sae, routes, status)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="connect-channel",
                                        daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (safe to call twice, or before start)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, context: ssl.SSLContext):
        self.tls = context
        super().__init__(address, handler)

    def get_request(self):
        sock, address = self.socket.accept()
        # The handshake runs in the request's thread (a slow client blocks no one).
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request, client_address) -> None:
        log.warning("connect channel: a request from %s failed", client_address[0], exc_info=log.isEnabledFor(10))


class _RequestHandler(BaseHTTPRequestHandler):
    server: _TlsServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.request.settimeout(10)
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        _, _, _, status = self.server.channel
        if self.path != STATUS_PATH:
            return self._reply(404, {"message": "unknown path"})
        self._reply(200, status())

    def do_POST(self) -> None:
        credentials, peer_sae, routes, _ = self.server.channel
        handler = routes.get(self.path)
        if handler is None:
            return self._reply(404, {"message": "unknown path"})
        if credentials.identity(self.request.getpeercert(binary_form=True)) != peer_sae:
            return self._reply(401, {"message": "only the peer agent may post here"})
        try:
            self._reply(200, handler(self._body()))
        except BadRequest as exc:
            self._reply(400, {"message": exc.message})
        except ConnectorError as exc:
            self._reply(503, {"message": exc.message})

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            raise BadRequest("a JSON object body of at most 16 kB is required")
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            raise BadRequest("body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        log.debug("connect channel: " + format, *args)


class ChannelClient:
    """Posts to the peer agent, after checking its certificate names the peer SAE."""

    def __init__(self, address: str, credentials: SaeCredentials, peer_sae: str, timeout_s: float = 10.0):
        self.host, self.port = parse_address(address)
        self.credentials = credentials
        self.peer_sae = peer_sae
        self.timeout_s = timeout_s
        self._context = credentials.context(server_side=False)

    def post(self, path: str, body: dict) -> dict:
        """The peer's JSON answer to ``body``; ConnectorError if unreachable, not the
        peer, or not 200 (with the peer's message)."""
        return self._request("POST", path, json.dumps(body))

    def get(self, path: str) -> dict:
        """The peer's JSON answer to a GET (its status)."""
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, data: str | None) -> dict:
        connection = http.client.HTTPSConnection(self.host, self.port, context=self._context, timeout=self.timeout_s)
        try:
            connection.connect()
            peer = self.credentials.verified_identity(connection.sock.getpeercert(binary_form=True))
            if peer != self.peer_sae:
                raise ConnectorError(f"the agent at {self.host}:{self.port} is {peer!r}, not {self.peer_sae!r}")
            connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = _json(response.read())
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectorError(f"peer agent {self.host}:{self.port} unreachable: {exc}") from None
        finally:
            connection.close()
        if response.status != 200:
            raise ConnectorError(f"peer agent answered {response.status}: {answer.get('message', 'no message')}")
        return answer


def _json(data: bytes) -> dict:
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
