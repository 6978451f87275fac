"""Per-SAE limits on a running node with several workers: the counters are in the
node's Redis, so every worker enforces one rate and one concurrency limit per SAE, and
a refused request gets 503 (ETSI 014 has no 429) before any key is touched."""

from __future__ import annotations

import pytest

from tests.support.conditions import wait_until
from tests.support.raw_connections import Sockets, parse_response
from tests.support.tls_probes import python_client

pytestmark = pytest.mark.integration


@pytest.fixture
def sockets():
    opened = Sockets()
    yield opened
    opened.close_all()


def new_connection_status(node, sae_id: str) -> int | None:
    """The status of one request on a new connection (the kernel spreads them over the workers)."""
    sae = node.manifest["saes"][sae_id]
    answer = python_client(int(node.url.rsplit(":", 1)[1]), node.manifest["ca"], sae["cert"], sae["key"]).answer
    return int(answer.split()[1]) if answer else None


def test_the_rate_per_sae_holds_across_workers(make_node) -> None:
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={
        "server": {"workers": 3}, "limits": {"requests_per_s_per_sae": 0.01, "request_burst_per_sae": 6}})
    other = node.client("sae-2")
    stored = other.status("sae-1")["stored_key_count"]
    answers = [new_connection_status(node, "sae-1") for _ in range(10)]
    assert answers == [200] * 6 + [503] * 4
    refused = node.client("sae-1").request("POST", "sae-2/enc_keys", json={"number": 1})
    assert refused.status_code == 503
    assert refused.json() == {"message": "too many requests from this SAE (limits.requests_per_s_per_sae); "
                                         "retry later"}
    assert 90 <= int(refused.headers["Retry-After"]) <= 100
    assert other.status("sae-1")["stored_key_count"] == stored  # the refused enc_keys reserved nothing


def test_requests_in_progress_per_sae_hold_across_workers(make_node, sockets) -> None:
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={
        "server": {"workers": 3}, "limits": {"concurrent_requests_per_sae": 1}})
    # A POST whose body has not all arrived is a request in progress: admitted, waiting for its body.
    body = b'{"number": 1}'
    held = sockets.tls(node, "sae-1")
    held.sendall(b"POST /api/v1/keys/sae-2/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5])
    # Only once it is counted: a request sent meanwhile could take the one place first
    # (a fresh worker's first admission is slower) and the held one would get the 503.
    wait_until(lambda: node.requests_in_progress("sae-1") == 1, "the held request to be admitted", 30)
    busy = node.client("sae-1").request("GET", "sae-2/status")
    assert (busy.status_code, busy.json()["message"]) == (
        503, "too many requests from this SAE in progress (limits.concurrent_requests_per_sae); retry later")
    assert [new_connection_status(node, "sae-1") for _ in range(6)] == [503] * 6
    assert new_connection_status(node, "sae-2") == 200  # another SAE is not held up

    held.sendall(body[5:])
    status, _, _ = parse_response(held.recv(65536))
    assert status == 200
    wait_until(lambda: new_connection_status(node, "sae-1") == 200,
               "sae-1 to be served again once its request ended", 30)
