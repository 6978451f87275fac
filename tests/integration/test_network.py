"""A chain of four real node processes (A-B-C-D), each with its own embedded Redis,
joined by simulated QKD links: adjacent delivery, 3-hop trusted-node relay, multicast
across nodes, a peer down and back, a node killed -9 during traffic, concurrent masters.

After each scenario the invariants hold: no key_ID or key bytes delivered twice,
every delivered key retrievable exactly once by each slave, and the pools at both
ends of every link identical. Assertions compare counts and digests, never key bytes.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest

from adapters.etsi014_client import Etsi014Error
from tests.support.invariants import Ledger, assert_pools_identical
from tests.support.network import FAST_LINK, LocalNetwork
from tests.support.conditions import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAES = {"A": ("sae-a", "sae-a2"), "B": ("sae-b",), "C": ("sae-c",), "D": ("sae-d",)}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("chain"), SAES,
                           [("A", "B"), ("B", "C"), ("C", "D")], FAST_LINK)
    network.start()
    yield network
    network.close()


@pytest.fixture(scope="module")
def ledger():
    return Ledger()


def deliver(net, ledger, master_sae, slaves, number=4, size_bits=256):
    """enc_keys at the master, dec_keys at every slave; returns the key_IDs."""
    master = net.client(master_sae)
    keys = master.enc_keys(slaves[0], number=number, size_bits=size_bits, additional_slaves=slaves[1:])
    ledger.issued(keys)
    ids = [k.key_id for k in keys]
    for slave in slaves:
        ledger.fetched(slave, net.client(slave).dec_keys(master_sae, ids))
        with pytest.raises(Etsi014Error) as again:
            net.client(slave).dec_keys(master_sae, ids[:1])
        assert again.value.status == 400
    return ids


def test_pools_fill_and_status_reports_the_route(net):
    status = net.wait_for_keys(net.client("sae-a"), "sae-d", 32)
    assert status["source_KME_ID"] == "A" and status["target_KME_ID"] == "D"
    assert status["status_extension"]["qkms_source"]["route"] == ["A", "B", "C", "D"]


def test_adjacent_delivery(net, ledger):
    net.wait_for_keys(net.client("sae-a"), "sae-b", 16)
    ids = deliver(net, ledger, "sae-a", ["sae-b"], number=8)
    assert len(ids) == 8
    ledger.check()
    assert_pools_identical(net)


def test_three_hop_relay_records_its_route(net, ledger):
    net.wait_for_keys(net.client("sae-a"), "sae-d", 16)
    keys = net.client("sae-a").enc_keys("sae-d", number=4, size_bits=512)
    ledger.issued(keys)
    provenance = keys[0].extension["qkms_provenance"]
    assert provenance["route"] == ["A", "B", "C", "D"]
    assert "qkd-sim" in provenance["sources"] and "one-time-pad" in provenance["algorithms"]
    ledger.fetched("sae-d", net.client("sae-d").dec_keys("sae-a", [k.key_id for k in keys]))
    ledger.check()
    assert_pools_identical(net)


def test_each_hop_consumes_exactly_the_key_size(net, ledger):
    net.wait_for_keys(net.client("sae-d"), "sae-a", 16)
    def usage():
        return {(link.link_id, owner, end): net.pools(end).usage_bits(link.link_id, owner)
                for link in net.links for owner in link.nodes for end in link.nodes}

    before = usage()
    deliver(net, ledger, "sae-d", ["sae-a"], number=2, size_bits=256)
    after = usage()
    for link_id, sender in (("C-D", "D"), ("B-C", "C"), ("A-B", "B")):
        receiver = next(n for n in link_id.split("-") if n != sender)
        carved = after[(link_id, sender, sender)]["carved_bits"] - before[(link_id, sender, sender)]["carved_bits"]
        taken = after[(link_id, sender, receiver)]["taken_bits"] - before[(link_id, sender, receiver)]["taken_bits"]
        assert carved == taken == 512, f"hop {sender}->{receiver} over {link_id}"


def test_multicast_across_nodes_each_slave_fetches_once(net, ledger):
    net.wait_for_keys(net.client("sae-a"), "sae-d", 16)
    deliver(net, ledger, "sae-a", ["sae-d", "sae-b", "sae-a2"], number=3)
    ledger.check()
    assert_pools_identical(net)


def test_concurrent_masters_on_several_nodes(net, ledger):
    for master, slave in (("sae-a", "sae-d"), ("sae-d", "sae-a"), ("sae-b", "sae-c"), ("sae-c", "sae-a")):
        net.wait_for_keys(net.client(master), slave, 24)
    errors: list[str] = []

    def run(master, slave):
        for _ in range(6):
            try:
                deliver(net, ledger, master, [slave], number=2)
            except Etsi014Error as exc:
                errors.append(f"{master}->{slave}: {exc.status}")

    threads = [threading.Thread(target=run, args=pair) for pair in
               (("sae-a", "sae-d"), ("sae-d", "sae-a"), ("sae-b", "sae-c"), ("sae-c", "sae-a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ledger.check()
    assert_pools_identical(net)


def test_peer_down_gives_503_and_leaves_nothing_reserved_then_resumes(net, ledger):
    net.wait_for_keys(net.client("sae-a"), "sae-d", 8)
    pending_before = {k: net.store(k).pending_count() for k in ("A", "B", "D")}
    net.stop("C")
    with pytest.raises(Etsi014Error) as down:
        net.client("sae-a").enc_keys("sae-d", number=2)
    assert down.value.status == 503
    assert {k: net.store(k).pending_count() for k in ("A", "B", "D")} == pending_before
    net.start("C")
    net.wait_for_keys(net.client("sae-a"), "sae-d", 8)
    deliver(net, ledger, "sae-a", ["sae-d"], number=2)
    ledger.check()


def test_node_killed_during_traffic_and_restarted(net, ledger):
    net.wait_for_keys(net.client("sae-a"), "sae-d", 32)
    outcomes, lock, stop, crashed = Counter(), threading.Lock(), threading.Event(), []

    def traffic():
        while not stop.is_set():
            try:
                deliver(net, ledger, "sae-a", ["sae-d"], number=2)
                outcome = "ok"
            except (Etsi014Error, httpx.HTTPError):
                outcome = "failed"
            except BaseException as exc:  # an assertion in deliver: re-raised below
                crashed.append(exc)
                return
            with lock:
                outcomes[outcome] += 1
            if outcome == "failed":
                stop.wait(0.2)  # pace the retries while B is down

    def at_least(outcome: str, number: int) -> bool:
        """Whether ``number`` deliveries had ``outcome`` (or the traffic crashed: re-raised below)."""
        with lock:
            return bool(crashed) or outcomes[outcome] >= number

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_until(lambda: at_least("ok", 2), "deliveries A->D through B", 120)
        net.kill9("B")
        wait_until(lambda: at_least("failed", 1), "a delivery to fail while B is down", 120)
        net.start("B")
        with lock:
            ok_before_restart = outcomes["ok"]
        wait_until(lambda: at_least("ok", ok_before_restart + 1), "a delivery through B after its restart", 180)
    finally:
        stop.set()
        worker.join(timeout=60)
    if crashed:
        raise crashed[0]
    net.wait_for_keys(net.client("sae-a"), "sae-d", 8)
    deliver(net, ledger, "sae-a", ["sae-d"], number=2)
    ledger.check()
    assert_pools_identical(net)


def test_no_key_material_in_any_log(net, ledger):
    import base64

    audit = net.audit_text()
    assert all(key_id in audit for key_id in ledger.material), "a key_ID is missing from the audit trails"
    text = net.log_text() + audit
    leaked = sum(1 for m in ledger.material.values() if base64.b64encode(m).decode() in text or m.hex() in text)
    assert leaked == 0


def test_credentials_do_not_cross_interfaces(net):
    """An SAE certificate cannot speak the KM channel, a node certificate is no SAE, and a
    peer cannot send a hop that is not its own (all refused before any key moves)."""
    from adapters.etsi014_client import client_tls_context

    sae = net.manifest["saes"]["sae-a"]
    url_a, url_b = net.manifest["nodes"]["A"]["url"], net.manifest["nodes"]["B"]["url"]
    relay = {"request_id": "x.B", "route": [{"link": "A-B", "from": "A", "to": "B"}], "hop_index": 0,
             "master_SAE_ID": "sae-a", "slave_SAE_IDs": ["sae-b"], "size": 256, "ttl_s": 60,
             "keys": [{"key_ID": "k", "segments": [["A-B:0", 0, 32]]}]}
    with httpx.Client(verify=client_tls_context(net.manifest["ca"], sae["cert"], sae["key"])) as as_sae:
        assert as_sae.post(f"{url_b}/km/v1/relay", json=relay).status_code == 401
        assert as_sae.get(f"{url_b}/km/v1/links").status_code == 401
    node_dir = net.root / "nodes" / "A"
    with httpx.Client(verify=client_tls_context(net.manifest["ca"], node_dir / "node.crt", node_dir / "node.key")) as as_a:
        assert as_a.get(f"{url_a}/api/v1/keys/sae-b/status").status_code == 401
        # A is B's peer, but a hop "from C" must come from C.
        forged = {**relay, "route": [{"link": "B-C", "from": "C", "to": "B"}]}
        refused = as_a.post(f"{url_b}/km/v1/relay", json=forged)
        assert refused.status_code == 400 and "relay request refused" in refused.json()["message"]
