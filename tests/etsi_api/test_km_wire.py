"""JSON of the KM channel (etsi_api/km_wire.py): relay requests and link halves survive
a round trip, and every structurally malformed relay request is a BadRequest (DESIGN.md
sections 2 and 8). Whether a well-formed relay is acceptable is kms.relay.check_relay's
business (tests/kms/test_relay_checks.py)."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from etsi_api.km_wire import halves_from_json, halves_to_json, relay_from_json, relay_to_json
from kms.errors import BadRequest
from kms.link_board import LinkHalf
from kms.pools import Segment
from kms.relay import HopKey, RelayRequest
from kms.routing import Hop

ROUTE = (Hop("A--B", "KME-A", "KME-B"), Hop("B--C", "KME-B", "KME-C"), Hop("C--D", "KME-C", "KME-D"))
# Ciphertexts are fixed, recognisable test bytes (not key material).
OTP_1 = bytes(range(32))
OTP_2 = bytes(range(100, 132))


def relay_request(hop_index: int = 1, first_hop: bool = False) -> RelayRequest:
    keys = (
        HopKey("6f1c2a8e-0b7d-4f5e-9a43-3c1d2e5f7a90", (Segment("B--C:4", 96, 32),),
               None if first_hop else OTP_1),
        HopKey("0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b", (Segment("B--C:4", 128, 8), Segment("B--C:6", 0, 24)),
               None if first_hop else OTP_2),
    )
    return RelayRequest("req-1.KME-D", ROUTE, hop_index, "sae-a", frozenset({"sae-d2", "sae-d1"}), 256, 600,
                        keys)


GOLDEN = {
    "request_id": "req-1.KME-D",
    "route": [{"link": "A--B", "from": "KME-A", "to": "KME-B"},
              {"link": "B--C", "from": "KME-B", "to": "KME-C"},
              {"link": "C--D", "from": "KME-C", "to": "KME-D"}],
    "hop_index": 1,
    "master_SAE_ID": "sae-a",
    "slave_SAE_IDs": ["sae-d1", "sae-d2"],
    "size": 256,
    "ttl_s": 600,
    "keys": [{"key_ID": "6f1c2a8e-0b7d-4f5e-9a43-3c1d2e5f7a90", "segments": [["B--C:4", 96, 32]],
              "otp": base64.b64encode(OTP_1).decode()},
             {"key_ID": "0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b",
              "segments": [["B--C:4", 128, 8], ["B--C:6", 0, 24]],
              "otp": base64.b64encode(OTP_2).decode()}],
}


def test_a_relay_request_is_written_with_these_field_names() -> None:
    assert relay_to_json(relay_request()) == GOLDEN


def test_a_relay_over_policy_links_adds_the_plan_and_pqc_segments() -> None:
    """Compatible: a QKD-only relay reads and writes as before; a plan with other
    materials adds ``hop_pools``, a hybrid hop's keys ``pqc_segments``."""
    hybrid = relay_request()
    keys = tuple(HopKey(k.key_id, k.segments, k.ciphertext, (Segment("B--C#pqc:3", 0, 32),)) for k in hybrid.keys)
    request = RelayRequest(hybrid.request_id, ROUTE, 1, "sae-a", hybrid.slave_ids, 256, 600, keys,
                           ("qkd", "hybrid", "pqc"))
    body = relay_to_json(request)
    assert body["hop_pools"] == ["qkd", "hybrid", "pqc"]
    assert body["keys"][0]["pqc_segments"] == [["B--C#pqc:3", 0, 32]]
    assert relay_to_json(relay_from_json(json.loads(json.dumps(body)))) == body
    back = relay_from_json(body)
    assert back.plan == ("qkd", "hybrid", "pqc") and back.keys[1].pqc_segments == keys[1].pqc_segments
    qkd_only = RelayRequest(hybrid.request_id, ROUTE, 1, "sae-a", hybrid.slave_ids, 256, 600, hybrid.keys,
                            ("qkd", "qkd", "qkd"))
    assert relay_to_json(qkd_only) == GOLDEN and relay_from_json(GOLDEN).plan == ("qkd", "qkd", "qkd")


@pytest.mark.parametrize("change", [{"hop_pools": "qkd"}, {"hop_pools": [1]}, {"hop_pools": [""]}],
                         ids=["not-a-list", "not-strings", "empty-string"])
def test_a_malformed_plan_is_a_bad_request(change: dict) -> None:
    with pytest.raises(BadRequest, match="malformed relay request"):
        relay_from_json({**GOLDEN, **change})


@pytest.mark.parametrize("first_hop", [False, True], ids=["one-time-pad", "first hop"])
def test_a_relay_request_survives_a_round_trip(first_hop: bool) -> None:
    request = relay_request(hop_index=0 if first_hop else 1, first_hop=first_hop)
    wire = json.loads(json.dumps(relay_to_json(request)))
    assert relay_from_json(wire) == request


def test_the_first_hop_carries_no_material_only_segments() -> None:
    keys = relay_to_json(relay_request(hop_index=0, first_hop=True))["keys"]
    assert [k["otp"] for k in keys] == [None, None]
    assert relay_from_json({**GOLDEN, "keys": [{k: v for k, v in key.items() if k != "otp"}
                                               for key in GOLDEN["keys"]]}).keys[0].ciphertext is None


def test_the_last_hop_index_is_accepted() -> None:
    assert relay_from_json({**GOLDEN, "hop_index": 2}).is_last_hop


def broken(path: tuple, value=..., drop: bool = False) -> dict:
    """GOLDEN with the item at ``path`` replaced by ``value`` or removed."""
    data = copy.deepcopy(GOLDEN)
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


MALFORMED = {
    **{f"missing {field}": broken((field,), drop=True) for field in GOLDEN},
    "missing key_ID": broken(("keys", 0, "key_ID"), drop=True),
    "missing segments": broken(("keys", 1, "segments"), drop=True),
    "missing hop end": broken(("route", 1, "to"), drop=True),
    "otp not base64": broken(("keys", 0, "otp"), "not base64!"),
    "otp bad padding": broken(("keys", 0, "otp"), "QUJD"[:3]),
    "otp url-safe alphabet": broken(("keys", 0, "otp"), base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode()),
    "otp not a string": broken(("keys", 0, "otp"), 12),
    "negative offset": broken(("keys", 0, "segments", 0, 1), -1),
    "zero length": broken(("keys", 0, "segments", 0, 2), 0),
    "negative length": broken(("keys", 0, "segments", 0, 2), -32),
    "offset not an integer": broken(("keys", 0, "segments", 0, 1), "96"),
    "segment too short": broken(("keys", 0, "segments", 0), ["B--C:4", 96]),
    "segment too long": broken(("keys", 0, "segments", 0), ["B--C:4", 96, 32, 1]),
    "block id not a string": broken(("keys", 0, "segments", 0, 0), 4),
    "hop_index not a number": broken(("hop_index",), "one"),
    "hop_index a boolean": broken(("hop_index",), True),
    "empty key_ID": broken(("keys", 0, "key_ID"), ""),
    "empty request_id": broken(("request_id",), ""),
    "empty master": broken(("master_SAE_ID",), ""),
    "slave not a string": broken(("slave_SAE_IDs",), ["sae-d1", 7]),
    "route not a list of hops": broken(("route",), "A--B"),
    "size not a number": broken(("size",), "big"),
    "ttl_s missing value": broken(("ttl_s",), None),
    "block id too long": broken(("keys", 0, "segments", 0, 0), "B" * 129),
}


# Malformations found by review (they used to slip through).
MALFORMED.update({
    "keys not a list of objects": broken(("keys",), ["key"]),
    "slaves as one string": broken(("slave_SAE_IDs",), "sae-d1"),
})


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_relay_request_is_a_bad_request(case: str) -> None:
    with pytest.raises(BadRequest) as caught:
        relay_from_json(MALFORMED[case])
    assert "malformed relay request" in caught.value.message
    assert base64.b64encode(OTP_1).decode() not in caught.value.message


@pytest.mark.parametrize("body", [None, [], "relay", 3, {}], ids=["null", "list", "string", "number", "empty"])
def test_a_body_that_is_no_relay_object_is_a_bad_request(body) -> None:
    with pytest.raises(BadRequest):
        relay_from_json(body)


# --- link halves ---------------------------------------------------------------------------


HALVES = [
    LinkHalf("A--B", "KME-A", 123_456, "up", "", {"qber": 0.021, "key_rate_bps": 1500.0}, 1_700_000_000.5,
             ("qkd-sim",), ("decoy-bb84",), (1, 3, 5)),
    LinkHalf("A--B", "KME-B", 0, "down", "QBER 24.9% above abort threshold", {}, 1_700_000_001.0),
    LinkHalf("B--C", "KME-B", 8, "degraded", "high loss", {"qber": 0.07}, 0.0, ("qkd-sim", "ml-kem"),
             ("decoy-bb84", "ML-KEM-768"), ()),
]


def test_link_halves_survive_a_round_trip() -> None:
    wire = json.loads(json.dumps(halves_to_json(HALVES)))
    assert halves_from_json(wire) == HALVES
    assert halves_from_json(halves_to_json([])) == []


def test_link_halves_are_written_with_these_field_names() -> None:
    (first,) = halves_to_json(HALVES[:1])["links"]
    assert first == {"link": "A--B", "owner": "KME-A", "available_bits": 123_456, "state": "up", "reason": "",
                     "metrics": {"qber": 0.021, "key_rate_bps": 1500.0}, "observed_at": 1_700_000_000.5,
                     "sources": ["qkd-sim"], "algorithms": ["decoy-bb84"], "held_peer_sequences": [1, 3, 5],
                     "owner_observed_at": 1_700_000_000.5}


def test_link_halves_from_an_older_peer_default_the_optional_fields() -> None:
    wire = halves_to_json(HALVES[:1])
    for name in ("sources", "algorithms", "held_peer_sequences", "owner_observed_at"):
        del wire["links"][0][name]
    (half,) = halves_from_json(wire)
    assert (half.sources, half.algorithms, half.held_peer_sequences) == ((), (), ())
    assert half.version == half.observed_at == HALVES[0].observed_at
    assert half.available_bits == 123_456 and half.metrics == HALVES[0].metrics
