"""The node's gevent workers (qkms.gevent_worker, qkms.server) as a real node process:
idle keep-alive connections are closed, busy ones are kept, and the kernel spreads
connections over the workers (SO_REUSEPORT)."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from adapters.etsi014_client import client_tls_context

pytestmark = pytest.mark.integration

KEEPALIVE_S = 1


@pytest.fixture
def node(make_node):
    return make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 2, "keepalive_s": KEEPALIVE_S}})


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
    time.sleep(KEEPALIVE_S + 1.5)
    assert connection.sock.recv(1) == b"", "the node kept an idle connection past keepalive_s"


def test_connection_in_use_stays_open_past_keepalive(node):
    connection = connect(node)
    local_port = connection.sock.getsockname()[1]
    deadline = time.monotonic() + 3 * KEEPALIVE_S
    while time.monotonic() < deadline:
        status_over(connection)
        time.sleep(KEEPALIVE_S / 4)
    assert connection.sock.getsockname()[1] == local_port, "the connection was replaced"


def established_by_pid(port: int, pids: list[int]) -> dict[int, int]:
    """How many ESTABLISHED TCP connections on local ``port`` each process holds (Linux /proc)."""
    inodes = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    counts = {}
    for pid in pids:
        links = (fd.readlink() for fd in Path(f"/proc/{pid}/fd").iterdir())
        counts[pid] = sum(1 for link in links if str(link).removeprefix("socket:[").rstrip("]") in inodes)
    return counts


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_connections_are_spread_over_the_workers(node):
    connections = [connect(node) for _ in range(32)]
    for connection in connections:
        status_over(connection)
    port = int(node.url.rsplit(":", 1)[1])
    counts = established_by_pid(port, worker_pids(node.process.process.pid))
    assert len(counts) == 2 and sum(counts.values()) == 32, counts
    # Hashing 32 connections over two sockets: each gets at least 6 with probability > 0.999.
    assert min(counts.values()) >= 6, f"one worker holds nearly every connection: {counts}"
    for connection in connections:
        connection.close()
