"""WireGuard keyed by qkms: wireguard-go in two private network namespaces, joined by a
veth pair, each beside a `qkms connect wireguard` agent (SAEs at nodes A and C, keys
relayed through B). Handshakes complete with the qkms PSK of each rotation (the agents
end the session at every rotation, so every probe needs a fresh handshake); traffic
stops after a forced PSK mismatch and while qkms is unreachable (fail closed), and
comes back with the next agreed key."""

from __future__ import annotations

import hashlib

import pytest

from adapters.connectors.wireguard import WireGuardInstaller
from tests.support.connect import agent_pair, stop_pair
from tests.support.netns import WireGuardTunnel, require_namespaces

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL_S = 8  # > WireGuard's 5 s handshake retry, so a probe never straddles two keys


@pytest.fixture
def tunnel(tmp_path):
    require_namespaces("wireguard-go", "wg")
    made = WireGuardTunnel(tmp_path)
    try:
        yield made.start()
    finally:
        made.stop()


def psk_digest(device, peer) -> str | None:
    psk = device.preshared_key(peer)
    return hashlib.sha256(psk).hexdigest() if psk else None


def test_wireguard_runs_on_qkms_keys_and_fails_closed(qnet, tunnel):
    a, b = tunnel.a, tunnel.b
    assert tunnel.passes_traffic(10), "the tunnel does not work even without a PSK"
    init, resp = agent_pair(
        qnet, "wireguard", "wg-a-c",
        ("wg-a", ["--device", a.name, "--peer-public-key", b.public_key, "--apply", "immediately",
                  "--min-interval-s", "1"]),
        ("wg-c", ["--device", b.name, "--peer-public-key", a.public_key, "--apply", "immediately",
                  "--min-interval-s", "1"]),
        interval_s=INTERVAL_S, grace_s=30, retry_s=1)
    try:
        seen = set()
        for sequence in (1, 2, 3):
            init.wait_for(60, f"rotation {sequence}", state="keyed", sequence=sequence)
            resp.wait_for(10, f"rotation {sequence}", state="keyed", sequence=sequence)
            digest = psk_digest(a, b.public_key)
            assert digest is not None and digest == psk_digest(b, a.public_key)
            seen.add(digest)
            assert tunnel.passes_traffic(6), f"no handshake with the PSK of rotation {sequence}"
        assert len(seen) == 3

        # a forced mismatch: B alone gets another PSK (as a failing responder would), at
        # the start of a rotation interval so that no rotation mends it during the probe
        done = init.wait_for(60, "a fresh rotation", state="keyed", sequence=init.status()["sequence"] + 1)["sequence"]
        WireGuardInstaller(b.name, a.public_key).fail_closed()
        assert not tunnel.passes_traffic(2.5)
        init.wait_for(60, "the next rotation", state="keyed", sequence=done + 1)
        assert tunnel.passes_traffic(6), "the next agreed key did not bring the tunnel back"

        # qkms unreachable: node A (the initiator's) goes away; both ends fail closed
        qnet.stop("A")
        init.wait_for(30, "failing closed without its node", state="fail-closed")
        resp.wait_for(10, "failing closed on withdrawal", state="fail-closed")
        assert psk_digest(a, b.public_key) != psk_digest(b, a.public_key)
        assert not tunnel.passes_traffic(2.5)
        qnet.start("A")
        init.wait_for(90, "keyed again once its node is back", state="keyed")
        assert tunnel.passes_traffic(6)
    finally:
        stop_pair(init, resp)
        if "A" not in qnet.running:
            qnet.start("A")
    assert psk_digest(a, b.public_key) != psk_digest(b, a.public_key)  # stopped agents fail closed
