"""``qkms dashboard``: a node's dashboard in any local browser, without importing certificates.

A small HTTP server on a loopback address that forwards GET requests for
``/dashboard/...`` and ``/metrics`` to one node over mutual TLS, presenting the
administrator's certificate. Anyone who can reach its port on this machine acts as
that administrator for those read-only paths, so it listens on loopback only and
forwards nothing else (docs/dashboard.md). A browser holding the admin certificate
itself (PKCS#12 import) can open the node's own /dashboard/ instead.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address

import httpx

from adapters.etsi014_client import client_tls_context
from kms.errors import ConfigError

log = logging.getLogger("qkms.dashboard")

FORWARDED_PATHS = ("/dashboard", "/metrics")
TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Upstream:
    """The node to forward to and the administrator's credentials."""

    url: str
    ca: str
    cert: str
    key: str

    @classmethod
    def from_manifest(cls, manifest: dict, kme_id: str) -> "Upstream":
        if kme_id not in manifest["nodes"]:
            raise ConfigError(f"--node: no node {kme_id} in the manifest")
        admin = manifest.get("admin") or {}
        if not admin.get("cert"):
            raise ConfigError("the manifest names no administrator certificate (written by `qkms init`)")
        return cls(manifest["nodes"][kme_id]["url"], manifest["ca"], admin["cert"], admin["key"])


def forwarded(path: str) -> bool:
    """Whether the proxy forwards ``path`` (the query string aside)."""
    bare = path.split("?", 1)[0]
    return bare in FORWARDED_PATHS or bare.startswith("/dashboard/")


class DashboardProxy:
    """Serves ``upstream``'s dashboard on http://HOST:PORT/dashboard/ until ``stop()``."""

    def __init__(self, upstream: Upstream, host: str = "127.0.0.1", port: int = 0):
        if not ip_address(host).is_loopback:
            raise ConfigError(f"--listen: {host} is not a loopback address; the proxy acts as the administrator")
        self._client = httpx.Client(base_url=upstream.url, timeout=TIMEOUT_S,
                                    verify=client_tls_context(upstream.ca, upstream.cert, upstream.key))
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/dashboard/"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        client = self._client

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if not forwarded(self.path):
                    self._answer(404, b"only /dashboard/ and /metrics are forwarded\n", "text/plain")
                    return
                try:
                    upstream = client.get(self.path)
                except httpx.HTTPError as exc:
                    self._answer(502, f"node did not answer: {type(exc).__name__}\n".encode(), "text/plain")
                    return
                self._answer(upstream.status_code, upstream.content,
                             upstream.headers.get("content-type", "application/octet-stream"),
                             upstream.headers.get("location"))

            def _answer(self, status: int, body: bytes, content_type: str, location: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                if location:
                    self.send_header("Location", location)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args) -> None:
                log.debug("dashboard proxy: " + fmt, *args)

        return Handler

    def start(self) -> "DashboardProxy":
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "DashboardProxy":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
