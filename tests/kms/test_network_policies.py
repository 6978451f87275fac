"""Link policies in the network (kms/network.py, relay.py, hop_material.py) across
several nodes in one process on the in-memory stores, joined by the in-process KM
channel of tests/kms/test_network_unit.py.

Topology: A -qkd-only- B -hybrid- C -pqc-only- D, and B -qkd-then-pqc- E. Every link
end holds the same blocks in each pool its policy uses (its QKD pool ``<link>``, its PQC
pool ``<link>#pqc``). Keys are compared between nodes, never printed."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from kms.catkdf import hybrid_context, hybrid_pad
from kms.config import parse_config
from kms.errors import BadRequest, ExtensionNotSupported, ExtensionOptionsNotMet, Unavailable
from kms.keys import KeyBlock, KeyOrder, KeyRequest
from kms.link_board import LinkHalf
from kms.network import KeyNetwork
from kms.pools import owner_of
from kms.relay import HopKey, check_relay
from kms.service import KeyService, requirements
from kms.sources import SourceContext
from kms.csprng_source import CsprngSource
from kms.storage import open_memory_storage
from kms.storage.memory_db import MemoryDatabase
from tests.kms.test_network_unit import InProcessTransport

NODES = ("A", "B", "C", "D", "E")
LINKS = {("A", "B"): "qkd-only", ("B", "C"): "hybrid", ("C", "D"): "pqc-only", ("B", "E"): "qkd-then-pqc"}
BLOCK_BYTES, BLOCKS = 256, 8
SIZE_BITS = 256
PQC = {"kind": "ml-kem", "signing_key": "k", "peer_public_key": "p"}
SOURCES = {"qkd": (("qkd-sim",), ("decoy-bb84",)), "pqc": (("ml-kem",), ("ml-kem-768", "ml-dsa-65"))}


def kme(node: str) -> str:
    return f"KME-{node}"


def link_id(a: str, b: str) -> str:
    return f"{a}-{b}"


def link_section(a: str, b: str, policy: str) -> dict:
    section = {"id": link_id(a, b), "nodes": [kme(a), kme(b)], "policy": policy}
    if policy != "pqc-only":
        section["source"] = {"kind": "simulated"}
    if policy != "qkd-only":
        section["pqc"] = dict(PQC)
    return section


def node_config(node: str, tmp_path: Path):
    return parse_config({
        "kme_id": kme(node), "tls": {"cert": "c", "key": "k", "ca": "ca"}, "kek": {"file": "kek"},
        "saes": [{"id": f"sae-{node.lower()}"}, {"id": f"sae-{node.lower()}2"}],
        "peers": [{"kme_id": kme(o), "url": "https://127.0.0.1:1", "saes": [f"sae-{o.lower()}", f"sae-{o.lower()}2"]}
                  for o in NODES if o != node],
        "links": [link_section(a, b, policy) for (a, b), policy in LINKS.items()]}, tmp_path)


class PolicyNetwork:
    def __init__(self, tmp_path: Path):
        database = MemoryDatabase()
        self.transport = InProcessTransport()
        self.configs = {n: node_config(n, tmp_path) for n in NODES}
        self.storages = {n: open_memory_storage(kme(n), database) for n in NODES}
        self.networks = {n: KeyNetwork(self.configs[n], s.store, s.pools, s.board, self.transport)
                         for n, s in self.storages.items()}
        self.transport.networks = {kme(n): net for n, net in self.networks.items()}
        self.blocks: dict[str, list[KeyBlock]] = {}
        self.states: dict[tuple[str, str], str] = {}
        for (a, b), policy in LINKS.items():
            for pool in self.configs[a].links[list(LINKS).index((a, b))].roles:
                self._fill(a, b, link_id(a, b) if pool == "qkd" else f"{link_id(a, b)}#pqc")
        self.publish()

    def _fill(self, a: str, b: str, pool: str) -> None:
        ends = (kme(a), kme(b))
        blocks = [KeyBlock(f"{pool}:{seq}", os.urandom(BLOCK_BYTES), seq) for seq in range(BLOCKS)]
        self.blocks[pool] = blocks
        for holder in (a, b):
            for owner in ends:
                self.storages[holder].pools.add_blocks(pool, owner, [x for x in blocks if owner_of(x, ends) == owner])

    def publish(self) -> None:
        halves = []
        for (a, b), policy in LINKS.items():
            for owner in (a, b):
                for pool, role in ((link_id(a, b), "qkd"), (f"{link_id(a, b)}#pqc", "pqc")):
                    bits = self.storages[owner].pools.available_bits(pool, kme(owner))
                    state = self.states.get((pool, owner), "up")
                    halves.append(LinkHalf(pool, kme(owner), bits, state, observed_at=time.time(),
                                           sources=SOURCES[role][0], algorithms=SOURCES[role][1]))
        for storage in self.storages.values():
            storage.board.publish(halves)

    def originate(self, source: str, destination: str, number: int = 2, requires=frozenset()):
        order = KeyOrder(f"sae-{source.lower()}", {kme(destination): frozenset({f"sae-{destination.lower()}"})},
                         number, SIZE_BITS, 600, frozenset(requires))
        return self.networks[source].deliver(order)[0]

    def claim(self, node: str, source: str, keys):
        return self.storages[node].store.claim([k.key_id for k in keys], f"sae-{node.lower()}", f"sae-{source.lower()}")

    def usage(self, holder: str, pool: str, owner: str) -> int:
        usage = self.storages[holder].pools.usage_bits(pool, kme(owner))
        return usage["carved_bits"] + usage["taken_bits"]


@pytest.fixture
def net(tmp_path: Path) -> PolicyNetwork:
    return PolicyNetwork(tmp_path)


def same(got, expected) -> bool:
    return [k.key_id for k in got] == [k.key_id for k in expected] and \
        all(g.material == e.material for g, e in zip(got, expected))


def test_a_relay_over_a_mixed_route_reports_each_hops_material(net: PolicyNetwork) -> None:
    keys = net.originate("A", "D")
    delivered = net.claim("D", "A", keys)
    assert same(delivered, keys)
    for provenance in (keys[0].provenance, delivered[0].provenance):
        hops = [(h.link_id, h.sender, h.receiver, h.material) for h in provenance.hops]
        assert hops == [("A-B", "KME-A", "KME-B", "qkd"), ("B-C", "KME-B", "KME-C", "hybrid"),
                        ("C-D", "KME-C", "KME-D", "pqc")]
        assert [h.sources for h in provenance.hops] == [("qkd-sim",), ("qkd-sim", "ml-kem"), ("ml-kem",)]
        assert "catkdf-sha256" in provenance.hops[1].algorithms and "catkdf-sha256" not in provenance.hops[0].algorithms
        assert set(provenance.sources) == {"qkd-sim", "ml-kem"}
        assert provenance.to_dict()["hops"][2]["material"] == "pqc"
    used = 2 * SIZE_BITS
    assert (net.usage("A", "A-B", "A"), net.usage("B", "A-B", "A")) == (used, used)
    assert net.usage("B", "B-C", "B") == net.usage("B", "B-C#pqc", "B") == used, "hybrid: equal parts of both pools"
    assert net.usage("C", "C-D#pqc", "C") == net.usage("D", "C-D#pqc", "C") == used
    assert net.transport.requests[0][1].hop_pools == ("qkd", "hybrid", "pqc")


def test_a_hybrid_key_is_catkdf_of_both_pools_bound_to_its_context(net: PolicyNetwork) -> None:
    keys = net.originate("B", "C", number=1)
    assert same(net.claim("C", "B", keys), keys)
    hop_key: HopKey = net.transport.requests[-1][1].keys[0]
    qkd, pqc = (b"".join(block_bytes(net, s) for s in segments) for segments in (hop_key.segments, hop_key.pqc_segments))
    context = hybrid_context("B-C", keys[0].key_id, "sae-b", ["sae-c"], ("catkdf-sha256", "qkd:simulated", "pqc:ml-kem"))
    assert keys[0].material == hybrid_pad(qkd, pqc, context, "KME-B", "KME-C")
    assert keys[0].material not in (qkd, pqc)


def block_bytes(net: PolicyNetwork, segment) -> bytes:
    pool = segment.block_id.rsplit(":", 1)[0]
    block = next(b for b in net.blocks[pool] if b.block_id == segment.block_id)
    return block.material[segment.offset:segment.offset + segment.length]


def test_qkd_then_pqc_falls_back_while_the_qkd_source_is_down_and_returns(net: PolicyNetwork) -> None:
    def material(keys) -> str:
        return keys[0].provenance.hops[0].material

    first = net.originate("B", "E")
    net.states[("B-E", "B")] = "down"
    net.publish()
    fallback = net.originate("B", "E")
    net.states[("B-E", "B")] = "up"
    net.publish()
    back = net.originate("B", "E")
    assert [material(k) for k in (first, fallback, back)] == ["qkd", "pqc", "qkd"]
    assert fallback[0].provenance.sources == ("ml-kem",)
    for keys in (first, fallback, back):
        assert same(net.claim("E", "B", keys), keys)


@pytest.mark.parametrize("source, destination, requires, met", [
    ("A", "D", {"qkd"}, False), ("A", "B", {"pqc"}, False), ("A", "C", {"qkd"}, True),
    ("A", "C", {"pqc"}, False), ("B", "C", {"qkd", "pqc"}, True), ("B", "E", {"pqc"}, True),
    ("C", "D", {"pqc"}, True), ("B", "E", {"qkd", "pqc"}, False)])
def test_required_kinds_of_source_are_met_or_refused_before_anything_is_carved(
        net: PolicyNetwork, source: str, destination: str, requires: set, met: bool) -> None:
    before = {(n, p, o): net.usage(n, p, o) for n in NODES for p in ("A-B", "B-C", "B-C#pqc", "C-D#pqc", "B-E")
              for o in NODES}
    if not met:
        with pytest.raises(ExtensionOptionsNotMet) as refused:
            net.originate(source, destination, requires=requires)
        assert refused.value.message == "not all extension_mandatory request options could be met"
        assert {(n, p, o): net.usage(n, p, o) for n, p, o in before} == before, "material was carved"
        assert all(s.store.pending_count() == 0 for s in net.storages.values())
        return
    keys = net.originate(source, destination, requires=requires)
    assert all(requires <= {"qkd" if "qkd-sim" in h.sources else None, "pqc" if "ml-kem" in h.sources else None}
               for h in keys[0].provenance.hops)


def test_requirement_without_material_is_unavailable_not_unmet(net: PolicyNetwork) -> None:
    # No route at all (the QKD pool of A-B used up): a 503, as without a requirement.
    net.originate("A", "B", number=BLOCKS * BLOCK_BYTES * 8 // SIZE_BITS // 2)
    net.publish()
    with pytest.raises(Unavailable):
        net.originate("A", "B", number=1, requires={"qkd"})


def test_a_receiver_refuses_material_its_policy_does_not_use(net: PolicyNetwork) -> None:
    net.originate("A", "D", number=1)
    request = net.transport.requests[0][1]
    for plan, complaint in [(("pqc", "hybrid", "pqc"), "link A-B has policy qkd-only, which does not use pqc"),
                            (("qkd", "qkd", "pqc"), "link B-C has policy hybrid, which does not use qkd"),
                            (("qkd", "hybrid"), "must name the material of every hop"),
                            (("qkd", "hybrid", "quantum"), "unknown material")]:
        with pytest.raises(BadRequest, match=complaint):
            check_relay(request.__class__(**{**request.__dict__, "hop_pools": plan}), "KME-A", net.configs["B"])
    hybrid_hop = net.transport.requests[1][1]
    stripped = tuple(HopKey(k.key_id, k.segments, k.ciphertext) for k in hybrid_hop.keys)
    with pytest.raises(BadRequest, match="pqc_segments are given exactly on a hybrid hop"):
        check_relay(hybrid_hop.__class__(**{**hybrid_hop.__dict__, "keys": stripped}), "KME-B", net.configs["C"])


def test_extension_mandatory_names() -> None:
    assert requirements(({"qkms_require_qkd": True}, {"qkms_require_pqc": False})) == frozenset({"qkd"})
    assert requirements(({"qkms_require_qkd": True, "qkms_require_pqc": True},)) == frozenset({"qkd", "pqc"})
    for unsupported in ({"qkms_require_qkd": 1}, {"qkms_route": "x"}, {"qkms_require_qkd": "yes"}):
        with pytest.raises(ExtensionNotSupported, match="not all extension_mandatory parameters are supported"):
            requirements((unsupported,))


def test_a_local_key_cannot_meet_a_requirement(net: PolicyNetwork) -> None:
    storage = net.storages["A"]
    service = KeyService(net.configs["A"], storage.store, CsprngSource(SourceContext("KME-A")), net.networks["A"])
    request = KeyRequest(1, SIZE_BITS, extension_mandatory=({"qkms_require_pqc": True},))
    with pytest.raises(ExtensionOptionsNotMet):
        service.enc_keys("sae-a", "sae-a2", request)
    assert storage.store.pending_count() == 0
    keys = service.enc_keys("sae-a", "sae-c", KeyRequest(1, SIZE_BITS, extension_mandatory=({"qkms_require_qkd": True},)))
    assert [h.material for h in keys[0].provenance.hops] == ["qkd", "hybrid"]


def test_the_audit_log_records_each_keys_provenance(net: PolicyNetwork, caplog) -> None:
    storage = net.storages["A"]
    service = KeyService(net.configs["A"], storage.store, CsprngSource(SourceContext("KME-A")), net.networks["A"])
    with caplog.at_level(logging.INFO, logger="qkms.audit"):
        keys = service.enc_keys("sae-a", "sae-c", KeyRequest(1, SIZE_BITS, extension_mandatory=(
            {"qkms_require_qkd": True},)))
    (entry,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "qkms.audit"]
    assert entry["key_IDs"] == [keys[0].key_id] and entry["requires"] == ["qkd"]
    assert [h["material"] for h in entry["provenance"]["hops"]] == ["qkd", "hybrid"]
    assert keys[0].material.hex() not in caplog.text
