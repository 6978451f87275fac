"""A node checks every relay hop against its own configuration (kms.relay.check_relay),
before any pool bit is touched: a peer's certificate proves who it is, not that what it
asks for is right (issue 8, "Relays are trusted too far").

Topology: the chain A - B - C - D with a branch B - E; the checks run at C (an
intermediate node of A-B-C-D) and at D (the last node). Unit tier: no I/O.
"""

from __future__ import annotations

import dataclasses

import pytest

from kms.config import parse_config
from kms.errors import BadRequest
from kms.pools import Segment
from kms.relay import HopKey, RelayRequest, check_relay, relay_body_limit_bytes
from kms.routing import Hop

NODES = ("A", "B", "C", "D", "E")
LINKS = (("A", "B"), ("B", "C"), ("C", "D"), ("B", "E"))
KEY_ID = "6f1c2a8e-0b7d-4f5e-9a43-3c1d2e5f7a90"


def kme(node: str) -> str:
    return f"KME-{node}"


def link(a: str, b: str) -> str:
    return f"{a}--{b}"


def config_of(node: str, **limits):
    return parse_config({
        "kme_id": kme(node), "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"}, "kek": {"file": "k"},
        "saes": [{"id": f"sae-{node.lower()}"}], "limits": limits,
        "peers": [{"kme_id": kme(o), "url": "https://127.0.0.1:1", "saes": [f"sae-{o.lower()}"]}
                  for o in NODES if o != node],
        "links": [{"id": link(a, b), "nodes": [kme(a), kme(b)]} for a, b in LINKS],
    })


def hops(*nodes: str) -> tuple[Hop, ...]:
    names = {frozenset(pair): link(*pair) for pair in LINKS}
    return tuple(Hop(names[frozenset((a, b))], kme(a), kme(b)) for a, b in zip(nodes, nodes[1:]))


def relay(route=hops("A", "B", "C", "D"), hop_index=2, master="sae-a", slaves=("sae-d",), size_bits=256,
          ttl_s=600, keys=None) -> RelayRequest:
    if keys is None:
        keys = (HopKey(KEY_ID, (Segment("C--D:4", 0, size_bits // 8),), bytes(size_bits // 8)),)
    return RelayRequest("req.KME-D", route, hop_index, master, frozenset(slaves), size_bits, ttl_s, keys)


def refused(request: RelayRequest, caller: str, at: str, **limits) -> str:
    with pytest.raises(BadRequest) as caught:
        check_relay(request, caller, config_of(at, **limits))
    return caught.value.message


def test_a_genuine_last_hop_and_a_genuine_middle_hop_pass() -> None:
    check_relay(relay(), kme("C"), config_of("D"))
    check_relay(relay(hop_index=1), kme("B"), config_of("C"))
    first = relay(route=hops("A", "B"), hop_index=0, slaves=("sae-b",),
                  keys=(HopKey(KEY_ID, (Segment("A--B:0", 0, 32),)),))
    check_relay(first, kme("A"), config_of("B"))


def test_a_hop_must_run_from_the_caller_to_this_node() -> None:
    assert "from the caller to this node" in refused(relay(), kme("B"), "D")
    assert "from the caller to this node" in refused(relay(hop_index=1), kme("B"), "D")
    assert "hop_index outside the route" in refused(relay(hop_index=3), kme("C"), "D")
    assert "hop_index outside the route" in refused(relay(hop_index=-1), kme("C"), "D")


def test_the_route_must_be_a_path_of_the_configured_topology() -> None:
    invented = (Hop("A--C", kme("A"), kme("C")), Hop("C--D", kme("C"), kme("D")))
    assert "not a configured link" in refused(relay(route=invented, hop_index=1), kme("C"), "D")
    wrong_ends = (Hop("A--B", kme("E"), kme("C")), Hop("C--D", kme("C"), kme("D")))
    assert "not a configured link" in refused(relay(route=wrong_ends, hop_index=1), kme("C"), "D")
    gap = (Hop("A--B", kme("A"), kme("B")), Hop("C--D", kme("C"), kme("D")))
    assert "do not join" in refused(relay(route=gap, hop_index=1), kme("C"), "D")
    loop = hops("C", "B", "C", "D")
    assert "visits a node twice" in refused(relay(route=loop, master="sae-c"), kme("C"), "D")


def test_the_master_must_be_an_sae_of_the_routes_first_node() -> None:
    # B, holding a node certificate, claims a route A-B-C for A's SAE but starts it itself.
    forged = relay(route=hops("B", "C", "D"), hop_index=1, master="sae-a")
    assert "master_SAE_ID" in refused(forged, kme("C"), "D")
    assert "master_SAE_ID" in refused(relay(master="sae-unknown"), kme("C"), "D")


def test_the_slaves_must_be_saes_of_the_routes_last_node() -> None:
    assert "slave_SAE_IDs" in refused(relay(slaves=("sae-b",)), kme("C"), "D")
    assert "slave_SAE_IDs" in refused(relay(slaves=("sae-d", "sae-e")), kme("C"), "D")
    assert "slave_SAE_IDs" in refused(relay(slaves=()), kme("C"), "D")


def test_key_ids_must_be_canonical_uuids_and_distinct() -> None:
    for bad in ("key-1", KEY_ID.upper(), "{" + KEY_ID + "}"):
        key = HopKey(bad, (Segment("C--D:4", 0, 32),), bytes(32))
        assert "UUID" in refused(relay(keys=(key,)), kme("C"), "D")
    key = HopKey(KEY_ID, (Segment("C--D:4", 0, 32),), bytes(32))
    assert "repeat" in refused(relay(keys=(key, key)), kme("C"), "D")


def test_sizes_and_counts_within_this_nodes_limits() -> None:
    assert "key size" in refused(relay(size_bits=16384,
                                       keys=(HopKey(KEY_ID, (Segment("C--D:4", 0, 2048),), bytes(2048)),)),
                                 kme("C"), "D")
    assert "key size" in refused(relay(size_bits=255), kme("C"), "D")
    many = tuple(HopKey(f"6f1c2a8e-0b7d-4f5e-9a43-3c1d2e5f7a{i:02x}", (Segment("C--D:4", 32 * i, 32),), bytes(32))
                 for i in range(5))
    assert "number of keys" in refused(relay(keys=many), kme("C"), "D", max_keys_per_request=4)
    assert "number of keys" in refused(relay(keys=()), kme("C"), "D")
    assert "ttl_s" in refused(relay(ttl_s=0), kme("C"), "D")


def test_keys_must_match_their_size() -> None:
    short_pad = HopKey(KEY_ID, (Segment("C--D:4", 0, 32),), bytes(16))
    assert "ciphertext" in refused(relay(keys=(short_pad,)), kme("C"), "D")
    short_segments = HopKey(KEY_ID, (Segment("C--D:4", 0, 16),), bytes(32))
    assert "segments" in refused(relay(keys=(short_segments,)), kme("C"), "D")
    bare = HopKey(KEY_ID, (Segment("C--D:4", 0, 32),))
    assert "one-time-pad" in refused(relay(keys=(bare,)), kme("C"), "D")


def test_the_relay_body_limit_holds_the_largest_advertised_request() -> None:
    """The largest request within the limits, every key spread over the most blocks a
    carve allows (of both pools, on a hybrid hop), encodes within the KM channel's body limit."""
    import json

    from etsi_api.km_wire import relay_to_json
    from kms.pools import MAX_BLOCK_ID_CHARS, MAX_SEGMENTS_PER_KEY

    limits = config_of("D").limits
    size_bytes = limits.max_key_size_bits // 8
    per_segment = size_bytes // MAX_SEGMENTS_PER_KEY
    segments = tuple(Segment("b" * MAX_BLOCK_ID_CHARS, 10**9 + i, per_segment) for i in range(MAX_SEGMENTS_PER_KEY))
    keys = tuple(HopKey(f"6f1c2a8e-0b7d-4f5e-9a43-{i:012x}", segments, bytes(size_bytes), segments)
                 for i in range(limits.max_keys_per_request))
    request = relay()
    largest = dataclasses.replace(request, size_bits=limits.max_key_size_bits, keys=keys,
                                  hop_pools=("hybrid",) * len(request.route))
    encoded = json.dumps(relay_to_json(largest)).encode()
    assert len(encoded) <= relay_body_limit_bytes(limits)
