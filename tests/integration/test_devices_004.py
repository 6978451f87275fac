"""A link fed by a pair of mock ETSI 004 devices pushing keys, with real processes: nodes
A and B open a key stream at their devices, the devices push chunks to the nodes'
key-material endpoint, SAEs exchange keys over the link; a device pushing other bytes
than its peer is caught by the equality check and nothing of it reaches an SAE."""

from __future__ import annotations

import hashlib

import pytest

from tests.integration.test_devices import NoHalf, half
from tests.integration.test_network import assert_pools_identical
from tests.support.conditions import wait_until
from tests.support.network import FAST_LINK, LocalNetwork

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = {"key_chunk_size_bytes": 256, "chunks_per_block": 8, "poll_interval_s": 0.5, "health_window_s": 4,
            "backoff_max_s": 2, "breaker_cooldown_s": 3, "align_timeout_s": 5}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("devices004"), {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")],
                           FAST_LINK, {"A-B": "mock-device-004"}, source_settings=SETTINGS)
    try:
        network.start(timeout_s=120)
        yield network
    finally:
        network.close()


def exchange(net: LocalNetwork) -> list[str]:
    keys = net.client("sae-a").enc_keys("sae-b", number=2, size_bits=256)
    received = net.client("sae-b").dec_keys("sae-a", [k.key_id for k in keys])
    digests = [hashlib.sha256(k.material).hexdigest() for k in keys]
    assert digests == [hashlib.sha256(k.material).hexdigest() for k in received]
    return digests


def test_saes_exchange_keys_over_a_push_fed_link(net) -> None:
    net.wait_for_keys(net.client("sae-a"), "sae-b", 4, timeout_s=180)
    (key,) = net.client("sae-a").enc_keys("sae-b")
    assert key.extension["qkms_provenance"]["sources"] == ["qkd-device"]
    assert "etsi-gs-qkd-004-push" in key.extension["qkms_provenance"]["algorithms"]
    net.client("sae-b").dec_keys("sae-a", [key.key_id])
    assert len(set(exchange(net))) == 2
    wait_until(lambda: half(net, "A").state == "up" and half(net, "B").state == "up", "both halves up", 60)
    assert "0 blocks" not in half(net, "A").reason


def test_a_device_pushing_other_bytes_is_caught_and_the_link_recovers(net) -> None:
    pair = net.devices["A-B"]
    pair.set_faults("B", "different-bytes")
    try:
        wait_until(lambda: "equality check failed" in half(net, "A").reason, "the master to report the mismatch", 90)
        assert not isinstance(half(net, "A"), NoHalf)
    finally:
        pair.clear_faults("B")
    wait_until(lambda: half(net, "A").state == "up", "the link up again", 90)
    net.wait_for_keys(net.client("sae-a"), "sae-b", 2, timeout_s=90)
    exchange(net)
    assert_pools_identical(net)
