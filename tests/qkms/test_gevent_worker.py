"""The node's gevent workers (qkms.gevent_worker, qkms.server) as a real node process:
idle keep-alive connections are closed (at once when the node stops, while requests
in progress finish), busy ones are kept, each worker listens on its own SO_REUSEPORT socket so the kernel spreads connections over the workers;
connections that never authenticate and slow request headers cannot hold the node,
and malformed HTTP framing is refused before it changes anything.

Time bounds only ever wait for more time to pass (a slow machine cannot fail them):
the idle connection is awaited until the node closes it, and the busy connection's
requests come far more often than keepalive_s."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import select
import signal
import time
from pathlib import Path

import pytest

from adapters.etsi014_client import client_tls_context
from kms.pki import CertificateAuthority
from tests.conftest import SingleNode
from tests.support.raw_connections import (Sockets, closed_by_peer, ensure_open_files, etsi_error, exchange,
                                           node_port, parse_response, still_open, wait_until_closed)
from tests.support.conditions import wait_until

pytestmark = pytest.mark.integration

WORKERS = 2
KEEPALIVE_S = 2
#: Pause between requests on the busy connection: a tenth of keepalive_s.
BUSY_GAP_S = KEEPALIVE_S / 10
#: How long the node may take to close an idle connection (generous: a loaded machine).
CLOSE_TIMEOUT_S = 30 * KEEPALIVE_S
#: TCP states in /proc/net/tcp.
ESTABLISHED, LISTEN = "01", "0A"


@pytest.fixture
def node(make_node):
    return make_node(saes=("sae-1", "sae-2"),
                     config_overrides={"server": {"workers": WORKERS, "keepalive_s": KEEPALIVE_S}})


def connect(node) -> http.client.HTTPSConnection:
    sae = node.manifest["saes"]["sae-1"]
    port = int(node.url.rsplit(":", 1)[1])
    context = client_tls_context(node.manifest["ca"], sae["cert"], sae["key"])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    connection.connect()
    return connection


def status_over(connection: http.client.HTTPSConnection) -> dict:
    connection.request("GET", "/api/v1/keys/sae-2/status")
    response = connection.getresponse()
    assert response.status == 200
    return json.loads(response.read())


def test_idle_keepalive_connection_is_closed_by_the_node(node):
    connection = connect(node)
    assert status_over(connection)["master_SAE_ID"] == "sae-1"
    idle_since = time.monotonic()
    connection.sock.settimeout(CLOSE_TIMEOUT_S)
    try:
        closed = connection.sock.recv(1) == b""  # blocks until the node closes the connection
    except TimeoutError:
        pytest.fail(f"the node kept an idle connection open for {CLOSE_TIMEOUT_S} s (keepalive_s {KEEPALIVE_S})")
    assert closed, "the node sent data on an idle connection"
    assert time.monotonic() - idle_since >= KEEPALIVE_S / 2, "the node closed the connection well before keepalive_s"


def test_connection_in_use_stays_open_past_keepalive(node):
    connection = connect(node)
    local_port = connection.sock.getsockname()[1]
    opened, requests = time.monotonic(), 0
    while time.monotonic() - opened < 1.5 * KEEPALIVE_S:
        status_over(connection)
        requests += 1
        time.sleep(BUSY_GAP_S)  # the point of the test: requests keep coming, well within keepalive_s
    assert requests >= 2 and connection.sock.getsockname()[1] == local_port, "the connection was replaced"


def sockets_by_pid(port: int, pids: list[int], state: str) -> dict[int, set[str]]:
    """The TCP sockets (inodes) on local ``port`` in ``state`` that each process holds (Linux /proc)."""
    inodes = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    return {pid: {link.removeprefix("socket:[").rstrip("]") for link in open_files(pid)} & inodes for pid in pids}


def open_files(pid: int) -> set[str]:
    """What the process's file descriptors point to; a booting worker opens and closes
    files meanwhile, so one that vanishes between listing and reading is skipped."""
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.add(str(fd.readlink()))
        except FileNotFoundError:
            continue
    return targets


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_each_worker_listens_on_its_own_socket_and_gets_connections(make_node):
    # A keep-alive long enough that none of the 32 connections is closed as idle while
    # the others are made and used (the other tests' 2 s is for watching idle closes).
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": WORKERS, "keepalive_s": 60}})
    port = int(node.url.rsplit(":", 1)[1])

    def listening() -> dict[int, set[str]]:
        return sockets_by_pid(port, worker_pids(node.process.process.pid), LISTEN)

    # The node accepts connections once its first worker listens; the others boot after.
    listeners = wait_until(lambda: (found := listening()) and len(found) == WORKERS and all(found.values()) and found,
                           f"{WORKERS} listening workers")
    assert len(set().union(*listeners.values())) == WORKERS, "the workers share one listening socket"
    connections = [connect(node) for _ in range(32)]
    for connection in connections:
        status_over(connection)
    counts = {pid: len(held) for pid, held in sockets_by_pid(port, list(listeners), ESTABLISHED).items()}
    assert sum(counts.values()) == 32, counts
    # The kernel hashes each connection to one of the two sockets: that one worker gets all
    # 32 has probability 2**-31, on any machine.
    assert min(counts.values()) >= 1, f"one worker holds every connection: {counts}"
    for connection in connections:
        connection.close()


@pytest.fixture
def sockets():
    opened = Sockets()
    yield opened
    opened.close_all()


# ---- connections that never authenticate ---------------------------------------------

SILENT_CONNECTIONS = 300


@pytest.mark.slow
def test_silent_connections_neither_starve_clients_nor_stay_open(make_node, sockets):
    """More never-speaking TCP connections than both workers hold: an SAE is still
    served, and every silent connection is closed (handshake_timeout_s, per-address limit)."""
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={
        "server": {"workers": 2, "worker_connections": 40, "max_pending_connections_per_ip": 8}})
    ensure_open_files(SILENT_CONNECTIONS)
    silent = [sockets.tcp(node_port(node), source="127.0.0.2") for _ in range(SILENT_CONNECTIONS)]
    assert node.client("sae-1").status("sae-2")["master_SAE_ID"] == "sae-1"
    closed = wait_until_closed(silent, count=len(silent), timeout_s=120)
    assert len(closed) == len(silent), f"{len(silent) - len(closed)} silent connections are still open"


def test_pending_connections_beyond_the_per_address_limit_are_closed_at_once(make_node, sockets):
    """With a long handshake timeout only the per-address limit can close them: the
    excess goes at once, the limit's worth stays, another address is served."""
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={
        "server": {"workers": 1, "worker_connections": 50, "max_pending_connections_per_ip": 4,
                   "handshake_timeout_s": 300}})
    silent = [sockets.tcp(node_port(node), source="127.0.0.3") for _ in range(20)]
    closed = wait_until_closed(silent, count=16, timeout_s=60)
    assert len(closed) == 16
    assert sum(still_open(sock) for sock in silent if sock not in closed) == 4
    assert node.client("sae-1").status("sae-2")["master_SAE_ID"] == "sae-1"


def log_lines_from(node, source: str, timeout_s: float = 30) -> list[str]:
    """The node's log lines naming ``source``, once there is at least one (the server
    may close a connection just before it writes the line)."""
    return wait_until(lambda: [line for line in node.process.log_text().splitlines() if source in line],
                      f"a log line naming {source}", timeout_s)


def test_failed_handshakes_are_logged_in_short_rate_limited_lines(make_node, sockets, tmp_path):
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 1}})
    began = time.monotonic()
    for _ in range(50):
        sock = sockets.tcp(node_port(node), source="127.0.0.4")
        sock.sendall(b"GET /api/v1/keys/sae-2/status HTTP/1.1\r\nHost: plain-http\r\n\r\n")
        assert wait_until_closed([sock], count=1, timeout_s=30)
    rogue = CertificateAuthority.create("rogue CA")
    rogue.issue_sae_certificate("sae-1").save(tmp_path / "r.crt", tmp_path / "r.key")
    node.manifest["saes"]["rogue"] = {"cert": tmp_path / "r.crt", "key": tmp_path / "r.key"}
    with contextlib.suppress(OSError):
        assert exchange(sockets.tls(node, "rogue", source="127.0.0.5"), b"GET / HTTP/1.1\r\n\r\n") == b""
    plain, rogue_lines = log_lines_from(node, "127.0.0.4"), log_lines_from(node, "127.0.0.5")
    minutes = int((time.monotonic() - began) // 60)
    assert "Traceback" not in node.process.log_text()
    # One line per address at most every 60 s, however long the 50 attempts took here.
    assert 1 <= len(plain) <= 1 + minutes, plain
    assert len(rogue_lines) == 1 and re.search(r"certificate", rogue_lines[0], re.IGNORECASE), rogue_lines
    assert all(len(line) < 300 for line in plain + rogue_lines)


# ---- slow request headers ------------------------------------------------------------

SLOW_REQUEST = (b"GET /api/v1/keys/sae-2/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"X-Slow: " + b"z" * 40 + b"\r\n\r\n")


def trickle(sock, data: bytes, interval_s: float) -> int:
    """Send ``data`` a byte every ``interval_s``; the number of bytes sent before the
    server closed the connection (``len(data)`` if it never did)."""
    for sent in range(len(data)):
        try:
            sock.sendall(data[sent:sent + 1])
        except OSError:
            return sent
        readable, _, _ = select.select([sock], [], [], interval_s)
        if readable and closed_by_peer(sock):
            return sent + 1
    return len(data)


@pytest.mark.slow
def test_slow_headers_are_cut_off_by_header_timeout(make_node, sockets):
    """A client with a valid certificate trickling its headers (slowloris) is closed
    after header_timeout_s (2 s here), long before its ~55 s trickle would end."""
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 1, "header_timeout_s": 2}})
    sent = trickle(sockets.tls(node, "sae-1"), SLOW_REQUEST, interval_s=0.5)
    assert sent < len(SLOW_REQUEST) // 2, "the node waited for the whole trickled request"



@pytest.mark.slow
def test_idle_time_between_requests_does_not_count_as_header_time(make_node):
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={
        "server": {"workers": 1, "header_timeout_s": 1, "keepalive_s": 60}})
    connection = connect(node)
    status_over(connection)
    assert wait_until_closed([connection.sock], count=1, timeout_s=3) == [], "closed while idle"
    assert status_over(connection)["slave_SAE_ID"] == "sae-2"
    connection.close()


# ---- malformed HTTP, rejected below the application ---------------------------------

def post_enc_keys(*headers: bytes, body: bytes = b"{}") -> bytes:
    head = b"POST /api/v1/keys/sae-2/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return head + b"".join(header + b"\r\n" for header in headers) + b"\r\n" + body


def get_status(*headers: bytes, query: bytes = b"") -> bytes:
    head = b"GET /api/v1/keys/sae-2/status" + query + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    return head + b"".join(header + b"\r\n" for header in headers) + b"\r\n"


MALFORMED_REQUESTS = [
    (get_status(query=b"?pad=" + b"a" * 9000), "request line too long"),
    (get_status(b"X-Pad: " + b"a" * 70000), "request header line too long"),
    (get_status(*(b"X-Header-%d: 1" % i for i in range(150))), "too many request headers"),
    (post_enc_keys(b"Content-Length: 2", b"Content-Length: 2"), "Content-Length given more than once"),
    (post_enc_keys(b"Content-Length: 2", b"Transfer-Encoding: chunked", body=b"2\r\n{}\r\n0\r\n\r\n"),
     "Content-Length and Transfer-Encoding given together"),
    (post_enc_keys(b"Transfer-Encoding: gzip, chunked", body=b"2\r\n{}\r\n0\r\n\r\n"),
     "unsupported Transfer-Encoding"),
    (post_enc_keys(b"Content-Length: +2"), "Content-Length must be a decimal number"),
]


@pytest.fixture(scope="module")
def one_worker_node(tmp_path_factory):
    node = SingleNode(tmp_path_factory.mktemp("one-worker"), ("sae-1", "sae-2"), {"server": {"workers": 1}})
    node.process.start()
    yield node
    node.close_clients()
    node.process.stop()


@pytest.mark.parametrize("request_bytes, message", MALFORMED_REQUESTS, ids=[m for _, m in MALFORMED_REQUESTS])
def test_malformed_http_is_400_with_an_etsi_error_and_changes_nothing(one_worker_node, sockets, request_bytes,
                                                                      message):
    master = one_worker_node.client("sae-1")
    before = master.status("sae-2")["stored_key_count"]
    status, error = etsi_error(exchange(sockets.tls(one_worker_node, "sae-1"), request_bytes))
    assert (status, error["message"]) == (400, message)
    assert master.status("sae-2")["stored_key_count"] == before


def test_a_stopping_node_ends_idle_connections_at_once_and_finishes_requests_in_progress(make_node, sockets):
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={
        "server": {"workers": 1}, "limits": {"concurrent_requests_per_sae": 4}})
    idle = connect(node)
    status_over(idle)  # now idle, kept alive, between requests
    body = b'{"number": 1}'
    held = sockets.tls(node, "sae-1")
    held.sendall(b"POST /api/v1/keys/sae-2/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5])
    wait_until(lambda: node.requests_in_progress("sae-1") == 1, "the held request to be in progress", 30)

    node.process.process.send_signal(signal.SIGTERM)
    idle.sock.settimeout(CLOSE_TIMEOUT_S)
    assert idle.sock.recv(1) == b"", "the stopping node sent data on an idle connection"
    # The request in progress is still served, then its connection closed.
    status, _, answer = parse_response(exchange(held, body[5:]))
    assert status == 200 and len(json.loads(answer)["keys"]) == 1
    node.process.process.wait(timeout=60)
    assert "graceful timeout" not in node.process.log_text()  # no connection held the worker
