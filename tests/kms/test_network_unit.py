"""KeyNetwork (kms/network.py) and the relay (kms/relay.py) across several nodes in one
process: stores, pools and link boards on one backend (one KME prefix per node; the
in-memory twins in the unit tier, a real Redis in the integration tier), joined by an
in-process PeerTransport that calls the other nodes' KeyNetwork directly (DESIGN.md
section 2). The HTTP KM channel is covered by tests/integration/test_network.py.

Topology: a chain A - B - C - D with a branch B - E. Assertions compare key_IDs,
counters and digests, never key bytes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etsi_api import km_wire
from kms.config import parse_config
from kms.errors import BadRequest, Conflict, KeysNotFound, QkmsError, QuotaExceeded, Unavailable
from kms.keys import Key, KeyBlock, KeyOrder
from kms.link_board import LinkHalf
from kms.network import KeyNetwork
from kms.pools import PoolMismatch, Segment, owner_of
from kms.relay import HopKey, PeerTransport, RelayRequest
from kms.routing import Hop
from tests.support.backends import Backend

NODES = ("A", "B", "C", "D", "E")
LINKS = (("A", "B"), ("B", "C"), ("C", "D"), ("B", "E"))
BLOCKS_PER_LINK = 8
BLOCK_BYTES = 128
SIZE_BITS = 256
TTL_S = 600


def kme(node: str) -> str:
    return f"KME-{node}"


def sae(node: str) -> str:
    return f"sae-{node.lower()}"


def link_id(a: str, b: str) -> str:
    return f"{kme(a)}--{kme(b)}"


def node_config(node: str, tmp_path: Path, **limits):
    """A NodeConfig as config/example.yaml lays it out; TLS and KEK files are never read."""
    data = {
        "kme_id": kme(node),
        "limits": limits,
        "tls": {"cert": "node.crt", "key": "node.key", "ca": "ca.crt"},
        "kek": {"file": "kek.hex"},
        "saes": [{"id": sae(node)}],
        "peers": [{"kme_id": kme(other), "url": f"https://127.0.0.1:{8443 + i}", "saes": [sae(other)]}
                  for i, other in enumerate(NODES) if other != node],
        "links": [{"id": link_id(a, b), "nodes": [kme(a), kme(b)], "source": {"kind": "simulated", "length_km": 10}}
                  for a, b in LINKS],
    }
    return parse_config(data, tmp_path)


class InProcessTransport(PeerTransport):
    """The KM channel as direct calls into the peers' KeyNetwork.

    Like the HTTP transport, any refusal by the peer reaches the caller as Unavailable.
    ``fault(peer, request, delivered)`` may raise to simulate a failure before the
    peer sees a request (delivered False) or a lost answer after it (delivered True);
    ``retry`` delivers every request a second time, as a retry after a lost answer."""

    def __init__(self):
        self.networks: dict[str, KeyNetwork] = {}
        self.fault: Callable[[str, RelayRequest, bool], None] = lambda peer, request, delivered: None
        self.retry = False
        self.requests: list[tuple[str, RelayRequest]] = []
        self.aborted: list[tuple[str, str]] = []
        self.refusals: list[QkmsError] = []

    def relay(self, peer: str, request: RelayRequest) -> None:
        self.requests.append((peer, request))
        self.fault(peer, request, False)
        for _ in range(2 if self.retry else 1):
            try:
                self.networks[peer].receive(request, request.hop.sender)
            except QkmsError as exc:
                self.refusals.append(exc)
                raise Unavailable(f"peer {peer} did not accept the request") from None
        self.fault(peer, request, True)

    def hops(self) -> list[int]:
        return [request.hop_index for _, request in self.requests]

    def chains(self) -> set[str]:
        return {request.request_id for _, request in self.requests}

    def sent_to(self, peer: str) -> list[RelayRequest]:
        return [request for to, request in self.requests if to == peer]

    def abort(self, peer: str, request_id: str) -> None:
        self.aborted.append((peer, request_id))
        self.networks[peer].abort(request_id)

    def sync_pool(self, peer: str, link_id: str, owner: str, sequence: int, offset: int) -> None:
        self.networks[peer].discard_before(link_id, owner, sequence, offset)

    def push_halves(self, peer: str, halves: list, changes_digest: str) -> str:
        raise Unavailable("these tests exchange no link state")

    def push_changes(self, peer: str, changes: list) -> None:
        raise Unavailable("these tests make no admin changes")

    def fetch_changes(self, peer: str) -> list:
        raise Unavailable("these tests make no admin changes")

    def exchange(self, peer: str, link_id: str, message: dict) -> dict:
        raise Unavailable("these tests run no key sources")


class Node:
    def __init__(self, node: str, backend: Backend, transport: InProcessTransport, tmp_path: Path, **limits):
        self.kme_id = kme(node)
        self.config = node_config(node, tmp_path, **limits)
        self.storage = backend.open(self.kme_id)
        self.store, self.pools, self.board = self.storage.store, self.storage.pools, self.storage.board
        self.network = KeyNetwork(self.config, self.store, self.pools, self.board, transport)


class Network:
    def __init__(self, backend: Backend, tmp_path: Path, **limits):
        self.transport = InProcessTransport()
        self.nodes = {name: Node(name, backend, self.transport, tmp_path, **limits) for name in NODES}
        self.transport.networks = {n.kme_id: n.network for n in self.nodes.values()}
        self.committed: list[tuple[list[Key], str]] = []

    def fill(self, skip: dict[tuple[str, str, str], set[int]] | None = None) -> None:
        """The same blocks at both ends of every link, each in its owner's half;
        ``skip[(a, b, holder)]`` names sequences that ``holder`` never received."""
        for a, b in LINKS:
            ends = (kme(a), kme(b))
            blocks = [KeyBlock(f"{link_id(a, b)}:{seq}", os.urandom(BLOCK_BYTES), seq)
                      for seq in range(BLOCKS_PER_LINK)]
            for holder in (a, b):
                missing = (skip or {}).get((a, b, holder), set())
                for owner in ends:
                    mine = [blk for blk in blocks if owner_of(blk, ends) == owner and blk.sequence not in missing]
                    self.nodes[holder].pools.add_blocks(link_id(a, b), owner, mine)
        self.publish()

    def publish(self) -> None:
        """Every node's board learns every link half, as the link manager would."""
        halves = [LinkHalf(link_id(a, b), kme(owner),
                           self.nodes[owner].pools.available_bits(link_id(a, b), kme(owner)),
                           observed_at=time.time(), sources=("qkd-sim",), algorithms=("decoy-bb84",))
                  for a, b in LINKS for owner in (a, b)]
        for node in self.nodes.values():
            node.board.publish(halves)

    def originate(self, source: str, destinations: list[str], number: int = 3) -> list[Key]:
        order = KeyOrder(sae(source), {kme(d): frozenset({sae(d)}) for d in destinations}, number, SIZE_BITS, TTL_S)
        keys, delivery = self.nodes[source].network.deliver(order)
        self.committed.append((keys, delivery.request_id))
        return keys

    def usage(self, holder: str, a: str, b: str, owner: str) -> dict[str, int]:
        return self.nodes[holder].pools.usage_bits(link_id(a, b), kme(owner))

    def pending(self) -> dict[str, int]:
        return {name: node.store.pending_count() for name, node in self.nodes.items()}

    def same_pools(self, a: str, b: str, owner: str) -> bool:
        lid = link_id(a, b)
        return self.nodes[a].pools.block_digests(lid, kme(owner)) == self.nodes[b].pools.block_digests(lid, kme(owner))


@pytest.fixture
def make_net(backend: Backend, tmp_path: Path) -> Iterator[Callable[..., Network]]:
    """Factory: a network on the test's backend, filled (see Network.fill)."""
    made: list[Network] = []

    def factory(skip: dict[tuple[str, str, str], set[int]] | None = None, **limits) -> Network:
        made.append(Network(backend, tmp_path, **limits))
        made[-1].fill(skip)
        return made[-1]

    yield factory
    for network in made:
        for node in network.nodes.values():
            node.storage.close()


@pytest.fixture
def net(make_net) -> Network:
    return make_net()


def claim_at(net: Network, node: str, source: str, keys: list[Key]) -> list[Key]:
    return net.nodes[node].store.claim([k.key_id for k in keys], sae(node), sae(source))


def assert_same_material(got: list[Key], expected: list[Key]) -> None:
    assert [k.key_id for k in got] == [k.key_id for k in expected]
    assert all(g.material == e.material for g, e in zip(got, expected)), "material differs"


def assert_nothing_reserved(net: Network) -> None:
    assert net.pending() == dict.fromkeys(NODES, 0)


def zero_usage() -> dict[str, int]:
    return {"carved_bits": 0, "taken_bits": 0, "discarded_bits": 0}


# --- delivery --------------------------------------------------------------------------


def test_a_delayed_push_does_not_hold_back_its_owners_newer_ones(net: Network) -> None:
    """A push that spent 5 s in transit is moved onto the receiver's clock 5 s further than
    its owner's next push, sent at once; the owner's own times order the two, so the newer
    one (with the blocks it confirms) is kept, not refused as older."""
    pool, owner, receiver = f"{link_id('A', 'B')}#pqc", kme("A"), net.nodes["B"]
    now = time.time()
    late = km_wire.halves_to_json([LinkHalf(pool, owner, 1024, observed_at=now - 6, held_peer_sequences=(1,))],
                                  now=now - 5)
    prompt = km_wire.halves_to_json([LinkHalf(pool, owner, 2048, observed_at=now - 2, held_peer_sequences=(1, 2))],
                                    now=now)
    for body in (late, prompt):
        receiver.network.accept_halves(km_wire.halves_push_from_json(body, owner), owner)
    held = receiver.board.read()[(pool, owner)]
    assert (held.available_bits, held.held_peer_sequences) == (2048, (1, 2))
    receiver.network.accept_halves(km_wire.halves_push_from_json(late, owner), owner)
    assert receiver.board.read()[(pool, owner)].held_peer_sequences == (1, 2), "the late push came again"


def test_adjacent_delivery_reserves_exactly_the_masters_bytes(net: Network) -> None:
    keys = net.originate("A", ["B"])
    assert len(keys) == 3 and len({k.key_id for k in keys}) == 3
    assert all(k.size_bits == SIZE_BITS for k in keys)
    distinct = len({k.material for k in keys})
    assert distinct == 3, "two keys share material"
    assert net.pending() == {"A": 0, "B": 3, "C": 0, "D": 0, "E": 0}
    assert_same_material(claim_at(net, "B", "A", keys), keys)
    assert net.usage("A", "A", "B", "A")["carved_bits"] == 3 * SIZE_BITS
    assert net.usage("B", "A", "B", "A")["taken_bits"] == 3 * SIZE_BITS
    assert net.same_pools("A", "B", "A")
    assert [k for k, _ in net.committed] == [keys]
    assert keys[0].provenance.route == (kme("A"), kme("B"))
    assert "qkd-sim" in keys[0].provenance.sources


def test_a_three_hop_relay_delivers_the_same_bytes_and_stores_nothing_on_the_way(net: Network) -> None:
    keys = net.originate("A", ["D"], number=4)
    assert net.pending() == {"A": 0, "B": 0, "C": 0, "D": 4, "E": 0}
    assert_same_material(claim_at(net, "D", "A", keys), keys)
    assert net.transport.hops() == [0, 1, 2]
    for a, b in (("A", "B"), ("B", "C"), ("C", "D")):
        assert net.usage(a, a, b, a) == {**zero_usage(), "carved_bits": 4 * SIZE_BITS}, f"{a} as sender on {a}-{b}"
        assert net.usage(b, a, b, a) == {**zero_usage(), "taken_bits": 4 * SIZE_BITS}, f"{b} as receiver on {a}-{b}"
        assert net.usage(a, a, b, b) == net.usage(b, a, b, b) == zero_usage(), f"reverse half of {a}-{b} used"
        assert net.same_pools(a, b, a), f"pools of {a}-{b} out of step"
    assert net.usage("B", "B", "E", "B") == zero_usage()
    route = keys[0].provenance.route
    assert route == tuple(kme(n) for n in "ABCD")
    assert "one-time-pad" in keys[0].provenance.algorithms


def test_keys_of_separate_requests_never_share_material(net: Network) -> None:
    first = net.originate("A", ["D"], number=2)
    second = net.originate("A", ["B"], number=2)
    distinct = len({k.material for k in first + second})
    assert distinct == 4, "two keys share material"


def test_a_retried_relay_request_carves_and_reserves_once(net: Network) -> None:
    net.transport.retry = True
    keys = net.originate("A", ["D"], number=2)
    assert net.pending() == {"A": 0, "B": 0, "C": 0, "D": 2, "E": 0}
    for a, b in (("A", "B"), ("B", "C"), ("C", "D")):
        assert net.usage(a, a, b, a)["carved_bits"] == 2 * SIZE_BITS, f"{a} carved twice on {a}-{b}"
        assert net.usage(b, a, b, a)["taken_bits"] == 2 * SIZE_BITS, f"{b} took twice on {a}-{b}"
    assert net.transport.refusals == []
    assert_same_material(claim_at(net, "D", "A", keys), keys)
    with pytest.raises(KeysNotFound):
        claim_at(net, "D", "A", keys)


def test_a_request_replayed_after_success_changes_nothing(net: Network) -> None:
    keys = net.originate("A", ["B"], number=2)
    (request,) = net.transport.sent_to(kme("B"))
    before = (net.pending(), net.usage("B", "A", "B", "A"))
    net.nodes["B"].network.receive(request, kme("A"))
    assert (net.pending(), net.usage("B", "A", "B", "A")) == before
    assert_same_material(claim_at(net, "B", "A", keys), keys)


def test_multicast_delivers_identical_bytes_to_both_destinations(net: Network) -> None:
    keys = net.originate("A", ["C", "E"], number=3)
    assert net.pending() == {"A": 0, "B": 0, "C": 3, "D": 0, "E": 3}
    assert_same_material(claim_at(net, "C", "A", keys), keys)
    assert_same_material(claim_at(net, "E", "A", keys), keys)
    assert net.usage("A", "A", "B", "A")["carved_bits"] == 2 * 3 * SIZE_BITS
    assert net.usage("B", "A", "B", "A")["taken_bits"] == 2 * 3 * SIZE_BITS
    for a, b in (("B", "C"), ("B", "E")):
        assert net.usage(a, a, b, a)["carved_bits"] == 3 * SIZE_BITS
        assert net.usage(b, a, b, a)["taken_bits"] == 3 * SIZE_BITS
        assert net.same_pools(a, b, a)
    assert net.same_pools("A", "B", "A")


def test_multicast_to_an_adjacent_and_a_far_node(net: Network) -> None:
    keys = net.originate("A", ["B", "D"], number=2)
    assert net.pending() == {"A": 0, "B": 2, "C": 0, "D": 2, "E": 0}
    assert_same_material(claim_at(net, "B", "A", keys), keys)
    assert_same_material(claim_at(net, "D", "A", keys), keys)


# --- failures ---------------------------------------------------------------------------


def fail_at_hop(hop_index: int, delivered: bool):
    def fault(peer: str, request: RelayRequest, after: bool) -> None:
        if request.hop_index == hop_index and after == delivered:
            raise Unavailable("injected KM channel failure")
    return fault


def test_a_failing_second_hop_fails_the_request_and_leaves_nothing_reserved(net: Network) -> None:
    net.transport.fault = fail_at_hop(1, delivered=False)
    with pytest.raises(Unavailable):
        net.originate("A", ["D"])
    assert_nothing_reserved(net)
    assert net.committed == []
    (chain,) = net.transport.chains()
    assert sorted(net.transport.aborted) == [(kme(n), chain) for n in "BCD"]
    assert net.usage("D", "C", "D", "C")["taken_bits"] == 0


def test_a_lost_answer_from_the_last_hop_destroys_the_reservation(net: Network) -> None:
    net.transport.fault = fail_at_hop(2, delivered=True)
    with pytest.raises(Unavailable):
        net.originate("A", ["D"])
    assert net.usage("D", "C", "D", "C")["taken_bits"] == 3 * SIZE_BITS, "the last hop never ran"
    assert_nothing_reserved(net)
    assert net.committed == []


def test_an_aborted_chain_is_refused_if_its_request_arrives_late(net: Network) -> None:
    net.transport.fault = fail_at_hop(2, delivered=False)
    with pytest.raises(Unavailable):
        net.originate("A", ["D"])
    (late,) = net.transport.sent_to(kme("D"))
    assert (kme("D"), late.request_id) in net.transport.aborted
    with pytest.raises(Conflict):
        net.nodes["D"].network.receive(late, kme("C"))
    assert_nothing_reserved(net)
    assert net.usage("D", "C", "D", "C") == zero_usage()


def test_a_cancelled_delivery_leaves_nothing_reserved(net: Network) -> None:
    order = KeyOrder(sae("A"), {kme("D"): frozenset({sae("D")}), kme("E"): frozenset({sae("E")})}, 2, SIZE_BITS, TTL_S)
    _, delivery = net.nodes["A"].network.deliver(order)
    assert net.pending() == {"A": 0, "B": 0, "C": 0, "D": 2, "E": 2}
    net.nodes["A"].network.cancel(delivery)
    assert_nothing_reserved(net)


def test_one_failing_multicast_destination_leaves_nothing_at_the_other(net: Network) -> None:
    net.transport.fault = lambda peer, request, after: _raise_if(after and peer == kme("E"))
    with pytest.raises(Unavailable):
        net.originate("A", ["C", "E"])
    assert net.usage("C", "B", "C", "B")["taken_bits"] == 3 * SIZE_BITS, "the chain to C never ran"
    assert_nothing_reserved(net)


def _raise_if(condition: bool) -> None:
    if condition:
        raise Unavailable("injected KM channel failure")


def test_a_pool_mismatch_at_the_adjacent_receiver_fails_and_reserves_nothing(make_net) -> None:
    net = make_net(skip={("A", "B", "B"): {0}})
    with pytest.raises(QkmsError):
        net.originate("A", ["B"])
    assert_nothing_reserved(net)
    assert [type(e) for e in net.transport.refusals] == [PoolMismatch]
    assert net.usage("B", "A", "B", "A") == zero_usage()


def test_a_pool_mismatch_on_a_later_hop_fails_and_reserves_nothing(make_net) -> None:
    net = make_net(skip={("C", "D", "D"): {0, 2}})
    with pytest.raises(QkmsError):
        net.originate("A", ["D"])
    assert_nothing_reserved(net)
    assert PoolMismatch in {type(e) for e in net.transport.refusals}
    assert net.usage("D", "C", "D", "C") == zero_usage()


@pytest.mark.parametrize("pad_bytes, segment_bytes", [(16, 32), (None, 16)], ids=["short pad", "short segments"])
def test_a_relay_whose_keys_do_not_match_its_size_takes_nothing(net: Network, pad_bytes, segment_bytes) -> None:
    lid = link_id("A", "B")
    key = HopKey("3d0f5b0e-8f7c-4c11-9d35-2f1b6c0e4a21", (Segment(f"{lid}:0", 0, segment_bytes),),
                 None if pad_bytes is None else bytes(pad_bytes))
    request = RelayRequest("bad-sizes", (Hop(lid, kme("A"), kme("B")),), 0, sae("A"), frozenset({sae("B")}),
                           SIZE_BITS, TTL_S, (key,))
    with pytest.raises(QkmsError):
        net.nodes["B"].network.receive(request, kme("A"))
    assert net.usage("B", "A", "B", "A") == zero_usage()
    assert_nothing_reserved(net)


def test_a_node_without_a_route_gets_unavailable_and_nothing_is_carved(net: Network) -> None:
    for holder in ("B", "C"):
        net.nodes[holder].pools.discard_before(link_id("B", "C"), kme("B"), 10_000, 0)
    net.publish()
    with pytest.raises(Unavailable):
        net.originate("A", ["D"])
    assert net.usage("A", "A", "B", "A") == zero_usage()
    assert net.transport.requests == []
    assert net.nodes["A"].network.route_capacity(kme("D"), SIZE_BITS)[1] == 0
    own_half_bits = BLOCKS_PER_LINK // 2 * BLOCK_BYTES * 8
    assert net.nodes["A"].network.route_capacity(kme("B"), SIZE_BITS)[1] == own_half_bits // SIZE_BITS


# --- provenance, trust and quotas ---------------------------------------------------------


def test_each_multicast_destination_records_its_own_route(net: Network) -> None:
    keys = net.originate("A", ["C", "E"], number=2)
    at_c, at_e = claim_at(net, "C", "A", keys), claim_at(net, "E", "A", keys)
    assert {k.provenance.route for k in at_c} == {tuple(kme(n) for n in "ABC")}
    assert {k.provenance.route for k in at_e} == {tuple(kme(n) for n in "ABE")}
    master = keys[0].provenance
    assert master.route == () and set(master.routes) == {tuple(kme(n) for n in "ABC"), tuple(kme(n) for n in "ABE")}
    assert "qkd-sim" in master.sources and "one-time-pad" in master.algorithms


def test_the_destination_records_provenance_from_its_own_view(net: Network) -> None:
    """The relay message carries no provenance: D's keys show what D's board says of the
    route's links, whatever A believes."""
    d_view = LinkHalf(link_id("C", "D"), kme("C"), 10**6, observed_at=time.time(), sources=("qkd-device",),
                      algorithms=("vendor-x",))
    net.nodes["D"].board.publish([d_view])
    keys = net.originate("A", ["D"], number=1)
    (at_d,) = claim_at(net, "D", "A", keys)
    assert "qkd-device" in at_d.provenance.sources and "qkd-device" not in keys[0].provenance.sources
    assert at_d.provenance == net.nodes["D"].network.route_provenance(tuple(net.transport.sent_to(kme("D"))[0].route))


class TtlRecordingStore:
    """The node's real store, remembering the TTL of every reservation it was asked for."""

    def __init__(self, store):
        self._store, self.ttls = store, []

    def reserve(self, reservations, ttl_s, request_id=None):
        self.ttls.append(ttl_s)
        return self._store.reserve(reservations, ttl_s, request_id)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_relay_cannot_extend_the_destinations_reservation_ttl(backend: Backend, tmp_path: Path) -> None:
    net = Network(backend, tmp_path)
    d = net.nodes["D"]
    recording = TtlRecordingStore(d.store)
    d.network = KeyNetwork(d.config, recording, d.pools, d.board, net.transport)
    net.transport.networks[d.kme_id] = d.network
    net.fill()
    order = KeyOrder(sae("A"), {kme("D"): frozenset({sae("D")})}, 1, SIZE_BITS, 2**40)
    keys, _ = net.nodes["A"].network.deliver(order)
    assert recording.ttls == [d.config.reservation_ttl_s]
    assert_same_material(claim_at(net, "D", "A", keys), keys)


def forged_at_c(net: Network, **changes) -> RelayRequest:
    """What B, holding a node certificate, might send C: its own carve of B->C."""
    (carved,) = net.nodes["B"].pools.carve(link_id("B", "C"), kme("B"), [SIZE_BITS // 8])
    request = RelayRequest("forged.KME-C", (Hop(link_id("B", "C"), kme("B"), kme("C")),), 0, sae("B"),
                           frozenset({sae("C")}), SIZE_BITS, TTL_S,
                           (HopKey("6f1c2a8e-0b7d-4f5e-9a43-3c1d2e5f7a90", carved.segments),))
    return dataclasses.replace(request, **changes)


@pytest.mark.parametrize("changes", [
    {"master_id": sae("A")},
    {"slave_ids": frozenset({sae("D")})},
    {"route": (Hop(link_id("A", "B"), kme("A"), kme("B")), Hop(link_id("B", "C"), kme("B"), kme("C"))),
     "master_id": sae("B")},
], ids=["master of another node", "slaves of another node", "route through a hop B is not"])
def test_a_forged_relay_is_refused_and_takes_nothing(net: Network, changes) -> None:
    request = forged_at_c(net, **changes)
    with pytest.raises(BadRequest):
        net.nodes["C"].network.receive(request, kme("B"))
    assert net.usage("C", "B", "C", "B") == zero_usage()
    assert_nothing_reserved(net)


def test_a_genuine_relay_from_b_passes(net: Network) -> None:
    net.nodes["C"].network.receive(forged_at_c(net), kme("B"))
    assert net.pending()["C"] == 1


def test_the_link_quota_refuses_before_anything_is_carved(make_net) -> None:
    net = make_net(max_keys_per_request=2, max_key_size_bits=SIZE_BITS, max_sae_id_count=0,
                   max_link_bits_per_sae_per_minute=3 * SIZE_BITS)
    net.originate("A", ["B"], number=2)
    with pytest.raises(QuotaExceeded):
        net.originate("A", ["D"], number=2)
    assert net.usage("A", "A", "B", "A")["carved_bits"] == 2 * SIZE_BITS
    assert net.pending()["D"] == 0
    net.originate("A", ["B"], number=1)
