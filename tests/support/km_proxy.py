"""A fault-injecting proxy on the KM channel between two real node processes.

The KM channel is HTTPS with mutual TLS, so a byte-level passthrough could only cut or
stall connections: to lose, duplicate, delay and reorder *messages* (and rewrite a
timestamp in one) the proxy terminates TLS. It stands in for the target node with that
node's own certificate (the test's CA issued it) and calls the target with the calling
node's certificate, so each node still sees its real peer. The product has no test
hook: the caller's config simply names the proxy as the peer's URL.

``plan(method, path, count)`` picks what happens to the ``count``-th request on a path
(counted from 0 per path), one of :data:`ACTIONS`; ``rewrite(path, body)`` may change
an answer's JSON body before the caller sees it, ``rewrite_request(path, body)`` a
request's before the target does.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from adapters.etsi014_client import client_tls_context

#: pass: forward; drop: lose the request (the caller sees the connection close);
#: lose_answer: forward, then lose the answer; duplicate: forward twice, answer the
#: second's result; late_duplicate: forward, answer, and send a copy once the next
#: request on the path is answered; delay: forward after DELAY_S; reorder: hold the
#: request until the next one on its path has been forwarded (at most HOLD_S).
ACTIONS = ("pass", "drop", "lose_answer", "duplicate", "late_duplicate", "delay", "reorder")
DELAY_S = 3.0
HOLD_S = 3.0

Plan = Callable[[str, str, int], str]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.proxy.handle(self)

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A caller that gave up on a delayed answer closed its connection: expected here."""


class KmFaultProxy:
    """Listens on 127.0.0.1:``port`` as ``target``; forwards to ``target_url`` as ``caller``."""

    def __init__(self, root: Path, caller: str, target: str, target_url: str, plan: Plan = lambda *_: "pass",
                 rewrite: Callable[[str, object], object] | None = None):
        nodes, ca = root / "nodes", root / "pki" / "ca.crt"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(nodes / target / "node.crt", nodes / target / "node.key")
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.proxy = self
        self._upstream = httpx.Client(base_url=target_url, timeout=30,
                                      verify=client_tls_context(ca, nodes / caller / "node.crt",
                                                                nodes / caller / "node.key"))
        self.plan, self.rewrite = plan, rewrite
        self.rewrite_request: Callable[[str, object], object] | None = None
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._waiting: dict[str, list[threading.Event]] = {}
        self.applied: Counter = Counter()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "KmFaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length", 0)))
        path = request.path.split("?")[0]
        if self.rewrite_request is not None and body:
            body = json.dumps(self.rewrite_request(path, json.loads(body))).encode()
        with self._lock:
            action = self.plan(request.command, path, self._counts[path])
            self._counts[path] += 1
            self.applied[(path, action)] += 1
            released, self._waiting[path] = self._waiting.get(path, []), []
        if action == "reorder":
            self._hold(path)
        if action == "drop":
            request.close_connection = True
            return self._release(released)
        if action == "delay":
            threading.Event().wait(DELAY_S)
        answer = self._forward(request.command, request.path, body)
        if action == "duplicate":
            answer = self._forward(request.command, request.path, body)
        self._release(released)
        if action == "lose_answer" or answer is None:
            request.close_connection = True
            return
        self._answer(request, path, *answer)
        if action == "late_duplicate":
            self._after_next(path, lambda: self._forward(request.command, request.path, body))

    def _hold(self, path: str) -> None:
        """Wait until the next request on ``path`` has been forwarded (or HOLD_S)."""
        event = threading.Event()
        with self._lock:
            self._waiting[path].append(event)
        event.wait(HOLD_S)

    def _after_next(self, path: str, action: Callable[[], object]) -> None:
        event = threading.Event()
        with self._lock:
            self._waiting[path].append(event)
        threading.Thread(target=lambda: (event.wait(HOLD_S), action()), daemon=True).start()

    @staticmethod
    def _release(events: list[threading.Event]) -> None:
        for event in events:
            event.set()

    def _forward(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        try:
            response = self._upstream.request(method, path, content=body or None,
                                              headers={"Content-Type": "application/json"} if body else None)
        except httpx.HTTPError:
            return None  # the target is down: the caller sees the connection close
        return response.status_code, response.content

    def _answer(self, request: BaseHTTPRequestHandler, path: str, status: int, content: bytes) -> None:
        if self.rewrite is not None and status == 200:
            content = json.dumps(self.rewrite(path, json.loads(content))).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)


def route_through_proxies(root: Path, manifest: dict, caller: str, targets: list[str]) -> dict[str, KmFaultProxy]:
    """Started proxies from ``caller`` to each of ``targets`` (everything passes until a
    test sets a proxy's ``plan``), written into the caller's config as those peers' URLs;
    start the caller after this."""
    config_path = Path(manifest["nodes"][caller]["config"])
    config = yaml.safe_load(config_path.read_text())
    proxies = {}
    for target in targets:
        proxies[target] = KmFaultProxy(root, caller, target, manifest["nodes"][target]["url"]).start()
    for peer in config["peers"]:
        if peer["kme_id"] in proxies:
            peer["url"] = proxies[peer["kme_id"]].url
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return proxies
