"""Raw TCP and TLS connections to a node: what HTTP client libraries never send
(silent sockets, trickled headers, malformed framing), always closed afterwards."""

from __future__ import annotations

import json
import resource
import selectors
import socket
import ssl
import time
from collections.abc import Iterable

from adapters.etsi014_client import client_tls_context


def node_port(node) -> int:
    return int(node.url.rsplit(":", 1)[1])


def ensure_open_files(count: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE towards the hard limit if ``count``
    more descriptors might not fit (the raised limit stays for the test session)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Sockets:
    """Every socket a test opens, so that all are closed when it ends."""

    def __init__(self) -> None:
        self._opened: list[socket.socket] = []

    def tcp(self, port: int, source: str = "127.0.0.1") -> socket.socket:
        """A TCP connection to the node from ``source`` (any 127/8 address on Linux)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._opened.append(sock)
        sock.bind((source, 0))
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        return sock

    def tls(self, node, sae_id: str, source: str = "127.0.0.1") -> ssl.SSLSocket:
        """A mutual-TLS connection to ``node`` presenting ``sae_id``'s certificate."""
        sae = node.manifest["saes"][sae_id]
        context = client_tls_context(node.manifest["ca"], sae["cert"], sae["key"])
        wrapped = context.wrap_socket(self.tcp(node_port(node), source), server_hostname="127.0.0.1")
        self._opened.append(wrapped)
        return wrapped

    def close_all(self) -> None:
        for sock in self._opened:
            sock.close()


def closed_by_peer(sock: socket.socket) -> bool:
    """Read what is there; True once the peer has closed (EOF, reset or TLS alert)."""
    try:
        return sock.recv(65536) == b""
    except (BlockingIOError, ssl.SSLWantReadError, TimeoutError):
        return False
    except (ConnectionError, ssl.SSLError):
        return True


def wait_until_closed(socks: Iterable[socket.socket], count: int, timeout_s: float) -> list[socket.socket]:
    """Wait until ``count`` of ``socks`` are closed by the peer or ``timeout_s`` passes;
    returns the closed ones."""
    closed: list[socket.socket] = []
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < count and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                if closed_by_peer(key.fileobj):
                    selector.unregister(key.fileobj)
                    closed.append(key.fileobj)
    return closed


def still_open(sock: socket.socket) -> bool:
    """True if the peer has not closed ``sock`` (checked without waiting)."""
    sock.setblocking(False)
    try:
        return not closed_by_peer(sock)
    finally:
        sock.settimeout(10)


def exchange(sock: socket.socket, request: bytes, timeout_s: float = 30) -> bytes:
    """Send ``request`` and read until the server closes the connection."""
    sock.settimeout(timeout_s)
    sock.sendall(request)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            return received
        if not chunk:
            return received
        received += chunk


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lowercase names) and body of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def etsi_error(raw: bytes) -> tuple[int, dict]:
    """Status and ETSI Error body of a response; fails the test if the body is not one."""
    status, headers, body = parse_response(raw)
    # Only the status line in the failure message: a 200 body would hold key material.
    assert headers.get("content-type") == "application/json", raw.partition(b"\r\n")[0]
    error = json.loads(body)
    assert set(error) <= {"message", "details"} and isinstance(error["message"], str), error
    return status, error
