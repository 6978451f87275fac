"""One network for every connector test: three real nodes A-B-C, each with its own
embedded Redis, and two links; the SAEs of applications sit at A and C, so every key
an agent pair uses is relayed through B (one-time pad per hop). Link material is
injected into the pools at once (tests/support/network.py); the simulated sources run
the smallest frame that still yields key (3e6 pulses; 1e6 aborts on the finite-key
bound) every 10 s, only so that the links count as up."""

from __future__ import annotations

import pytest

from tests.support.network import LocalNetwork

LINK = {"kind": "simulated", "preset": "snspd-illustrative", "length_km": 10,
        "pulses_per_frame": 3_000_000, "frame_interval_s": 10.0}
SAES = {"A": ("tls-a", "ike-a", "wg-a", "router-a", "file-a"), "B": (),
        "C": ("tls-c", "ike-c", "wg-c", "router-c", "file-c")}


@pytest.fixture(scope="session")
def qnet(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("connect-net"), SAES, [("A", "B"), ("B", "C")], LINK)
    try:
        network.start()
        network.inject("A", "B", 1 << 22)
        network.inject("B", "C", 1 << 22)
        network.wait_for_keys(network.client("tls-a"), "tls-c", 16, timeout_s=90)
        yield network
    finally:
        network.close()
