"""The whole-request deadline of the gevent worker (server.request_timeout_s): a request
whose body never completes gets a 503 ETSI Error when the deadline passes, changes
nothing, and its connection is closed; the node goes on serving."""

from __future__ import annotations

import time

import pytest

from tests.support.raw_connections import Sockets, etsi_error, exchange

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_S = 2


@pytest.fixture
def sockets():
    opened = Sockets()
    yield opened
    opened.close_all()


def test_a_request_whose_body_never_ends_gets_503_at_the_deadline(make_node, sockets) -> None:
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {
        "workers": 1, "header_timeout_s": 1, "request_timeout_s": REQUEST_TIMEOUT_S, "keepalive_s": 60}})
    client = node.client("sae-1")
    stored_before = client.status("sae-2")["stored_key_count"]
    head = (b"POST /api/v1/keys/sae-2/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n")
    started = time.monotonic()
    answer = exchange(sockets.tls(node, "sae-1"), head + b'{"number": 1', timeout_s=60)
    elapsed = time.monotonic() - started
    status, error = etsi_error(answer)
    assert (status, error["message"]) == (503, f"request not completed within {REQUEST_TIMEOUT_S} s")
    assert elapsed >= REQUEST_TIMEOUT_S  # not before the deadline; its message above names what ended it
    assert client.status("sae-2")["stored_key_count"] == stored_before
    assert len(node.client("sae-2").status("sae-1")) > 0  # still serving
