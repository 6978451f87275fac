"""Limits and final answers of the KM channel on real node processes (issue 8):

- the largest request the status advertises (max_key_per_request keys of max_key_size
  bits) relays over two hops; before, the relay body passed the KM channel's 64 kB limit
  and the master got a 503 after ~1 Mbit of link material was carved;
- a chain that was aborted is refused with a final 409, and the sending node does not
  retry it (before: a 503, retried ~0.75 s per hop);
- the per-SAE quota holds across the network.

Link material is injected into both ends' pools directly (tests/support/network.py), so
the test does not wait for the simulated frames to fill megabits; the simulated sources
run (a link whose source is down carries no route) on small frames.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from adapters.etsi014_client import Etsi014Error, client_tls_context
from etsi_api.km_client import HttpPeerTransport
from kms.config import load_config
from kms.errors import Unavailable
from kms.relay import HopKey, RelayRequest
from kms.routing import Hop
from tests.support.network import LocalNetwork

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINK = {"kind": "simulated", "preset": "snspd-illustrative", "length_km": 10,
        "pulses_per_frame": 3_000_000, "frame_interval_s": 4.0}
SAES = {"A": ("sae-a", "sae-a2"), "B": ("sae-b",), "C": ("sae-c",)}
LARGEST_BITS = 128 * 8192


QUOTA_AT_C = 128


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("limits"), SAES, [("A", "B"), ("B", "C")], LINK)
    config_c = Path(network.manifest["nodes"]["C"]["config"])
    data = yaml.safe_load(config_c.read_text())
    data.setdefault("limits", {})["max_pending_keys_per_sae"] = QUOTA_AT_C
    config_c.write_text(yaml.safe_dump(data, sort_keys=False))
    network.start()
    network.inject("A", "B", 3 * LARGEST_BITS)
    network.inject("B", "C", 3 * LARGEST_BITS)
    yield network
    network.close()


def test_the_largest_advertised_request_relays_over_two_hops(net: LocalNetwork) -> None:
    master, slave = net.client("sae-a"), net.client("sae-c")
    status = net.wait_for_keys(master, "sae-c", LARGEST_BITS // 256, timeout_s=60)
    assert (status["max_key_per_request"], status["max_key_size"]) == (128, 8192)
    before = net.pools("A").usage_bits("A-B", "A")["carved_bits"]
    keys = master.enc_keys("sae-c", number=128, size_bits=8192)
    assert len(keys) == 128 and all(len(k.material) == 1024 for k in keys)
    assert net.pools("A").usage_bits("A-B", "A")["carved_bits"] - before == LARGEST_BITS
    fetched = slave.dec_keys("sae-a", [k.key_id for k in keys])
    same = [a.material == b.material for a, b in zip(keys, fetched)]
    assert all(same), "the slave got other bytes than the master"
    assert fetched[0].extension["qkms_provenance"]["route"] == ["A", "B", "C"]


def node_client(net: LocalNetwork, kme_id: str) -> httpx.Client:
    node_dir = net.root / "nodes" / kme_id
    context = client_tls_context(net.manifest["ca"], node_dir / "node.crt", node_dir / "node.key")
    return httpx.Client(verify=context, timeout=10)


def relay_to_b(net: LocalNetwork, request_id: str) -> RelayRequest:
    """A genuine first hop A->B for B's SAE, on material A really carved."""
    (carved,) = net.pools("A").carve("A-B", "A", [32])
    return RelayRequest(request_id, (Hop("A-B", "A", "B"),), 0, "sae-a", frozenset({"sae-b"}), 256, 60,
                        (HopKey(str(uuid.uuid4()), carved.segments),))


def test_a_relay_of_an_aborted_chain_is_a_final_409(net: LocalNetwork) -> None:
    from etsi_api.km_wire import relay_to_json

    url_b = net.manifest["nodes"]["B"]["url"]
    request = relay_to_b(net, f"{uuid.uuid4()}.B")
    taken_before = net.pools("B").usage_bits("A-B", "A")["taken_bits"]
    with node_client(net, "A") as as_a:
        assert as_a.post(f"{url_b}/km/v1/abort", json={"request_id": request.request_id}).status_code == 200
        late = as_a.post(f"{url_b}/km/v1/relay", json=relay_to_json(request))
    assert late.status_code == 409 and late.json()["message"] == "relay request is aborted"
    assert net.pools("B").usage_bits("A-B", "A")["taken_bits"] == taken_before


class CountingTransport(httpx.HTTPTransport):
    """httpx's own transport, counting the requests that really went out."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent = 0

    def handle_request(self, request):
        self.sent += 1
        return super().handle_request(request)


def test_the_sending_node_does_not_retry_a_final_refusal(net: LocalNetwork) -> None:
    config = load_config(net.manifest["nodes"]["A"]["config"])
    transport = HttpPeerTransport(config)
    counting = CountingTransport(verify=client_tls_context(config.tls.ca, config.tls.cert, config.tls.key))
    transport._clients["B"]._transport = counting
    request = relay_to_b(net, f"{uuid.uuid4()}.B")
    transport.abort("B", request.request_id)
    sent_before = counting.sent
    with pytest.raises(Unavailable):
        transport.relay("B", request)
    assert counting.sent - sent_before == 1, "a final 409 was retried"
    transport.close()


def test_the_per_sae_quota_holds_for_relayed_keys(net: LocalNetwork) -> None:
    """C counts the keys it holds for sae-a against sae-a's quota: one more gets a 503
    at sae-a, sae-a2 (another master on A) is still served, and fetching frees it."""
    master, other, slave = net.client("sae-a"), net.client("sae-a2"), net.client("sae-c")
    held = master.enc_keys("sae-c", number=QUOTA_AT_C, size_bits=256)
    assert net.store("C").pending_count("sae-a") == QUOTA_AT_C
    with pytest.raises(Etsi014Error) as refused:
        master.enc_keys("sae-c", number=1, size_bits=256)
    assert refused.value.status == 503
    assert net.store("C").pending_count("sae-a") == QUOTA_AT_C
    served = other.enc_keys("sae-c", number=2, size_bits=256)
    slave.dec_keys("sae-a2", [k.key_id for k in served])
    slave.dec_keys("sae-a", [k.key_id for k in held])
    (again,) = master.enc_keys("sae-c", number=1, size_bits=256)
    slave.dec_keys("sae-a", [again.key_id])
