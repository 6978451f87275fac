"""The KM channel's OpenAPI document (etsi_api/km_openapi.yaml) is valid, names every
route the KM blueprint serves (and no other), uses the field names of
etsi_api/km_wire.py, and describes what the blueprint actually answers."""

from __future__ import annotations

import base64
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from flask import Flask
from openapi_spec_validator import OpenAPIV30SpecValidator

from etsi_api import errors, km_api, km_wire, meta_api
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.config import parse_config
from kms.errors import BadRequest, Conflict, Unavailable
from kms.link_board import LinkHalf
from kms.link_manager_state import LinkManagerStateName, LinkManagerStatus
from kms.pki import CertificateAuthority
from kms.pools import Segment
from kms.relay import HopKey, RelayRequest, check_relay
from kms.routing import Hop
from tests.support.openapi import FAILURE_CODES, assert_matches_schema, load, operations, resolve

DOCUMENT = Path(__file__).resolve().parents[2] / "etsi_api" / "km_openapi.yaml"
PREFIX = "/km/v1"


@pytest.fixture(scope="module")
def doc():
    return load(DOCUMENT)


def schema_props(doc, name):
    return set(doc["components"]["schemas"][name]["properties"])


def sample_relay(otp: bytes | None, hybrid: bool = False) -> RelayRequest:
    """A relay request; ``hybrid``: its second hop (link-B-C) is a hybrid one."""
    route = (Hop("link-A-B", "KME_A", "KME_B"), Hop("link-B-C", "KME_B", "KME_C"))
    pqc_segments = (Segment("link-B-C#pqc-5", 0, 32),) if hybrid else ()
    keys = (HopKey("bc490419-7d60-487f-adc1-4ddcc177c139",
                   (Segment("link-B-C-17", 96, 20), Segment("link-B-C-19", 0, 12)), otp, pqc_segments),)
    return RelayRequest("3f0c2a1e-7b55-4c1d-9d0e-5c7d1e2b8a90.KME_C", route, 1 if otp else 0, "sae-a1",
                        frozenset({"sae-c2", "sae-c1"}), 256, 300, keys, ("qkd", "hybrid") if hybrid else ())


#: KME_B of the chain KME_A - KME_B - KME_C, as a real configuration (files never read).
NODE_B = parse_config({
    "kme_id": "KME_B", "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"}, "kek": {"file": "kek.hex"},
    "saes": [{"id": "sae-b1"}],
    "peers": [{"kme_id": "KME_A", "url": "https://127.0.0.1:1", "saes": ["sae-a1"]},
              {"kme_id": "KME_C", "url": "https://127.0.0.1:2", "saes": ["sae-c1", "sae-c2"]}],
    "links": [{"id": "link-A-B", "nodes": ["KME_A", "KME_B"]}, {"id": "link-B-C", "nodes": ["KME_B", "KME_C"]}],
})


SAMPLE_HALF = LinkHalf("link-A-B", "KME_A", 4096, "degraded", "frame 3: QBER 9.0%", {"qber": 0.09},
                       1767225600.5, ("qkd-sim",), ("BB84",), (3, 5))
SAMPLE_LINK_MANAGER = LinkManagerStatus("restarting", 4242, 2, -9, 1.0, None)


# --- the document itself ---------------------------------------------------------

def test_validates_with_openapi_spec_validator(doc):
    errors = [error.message for error in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []


def test_structure_and_server(doc):
    assert doc["openapi"] == "3.0.3"
    assert [s["url"] for s in doc["servers"]] == [PREFIX]
    for path, method, op in operations(doc):
        final = {"409"} if path in ("/relay", "/links/{link_id}/exchange") else set()
        assert set(op["responses"]) == {"200"} | FAILURE_CODES | final, f"{method} {path}"
        for code in FAILURE_CODES | final:
            response = resolve(doc, op["responses"][code])
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(doc["components"]["schemas"]["Error"]["properties"]) == {"message", "details"}
    assert doc["components"]["schemas"]["Error"]["required"] == ["message"]
    text = DOCUMENT.read_text(encoding="utf-8")
    assert not re.search(r"^\s*'?(404|405)'?:", text, re.MULTILINE)


def test_mutual_tls_and_node_certificates_are_documented(doc):
    description = doc["info"]["description"]
    assert "mutual TLS" in description and "urn:qkms:kme:<KME_ID>" in description
    extension = doc["x-qkms-mutual-tls"]
    assert extension["required"] is True and extension["on_failure"] == 401
    assert extension["openapi_3_1_equivalent"] == {"type": "mutualTLS"}
    assert "urn:qkms:kme:<KME_ID>" in extension["node_id_from_certificate"]


def test_semantics_are_documented(doc):
    description = doc["info"]["description"].lower()
    for phrase in ("request_id", "never carves or reserves twice", "one-time pad",
                   "first hop of the primary route", "[block_id, offset_bytes, length_bytes]",
                   "the sender's half", "never contains", "xor"):
        assert phrase in description, phrase
    otp = doc["components"]["schemas"]["HopKey"]["properties"]["otp"]
    assert otp["type"] == "string" and otp["format"] == "byte" and otp["nullable"] is True
    assert "first hop of the primary route" in otp["description"]
    segment = doc["components"]["schemas"]["Segment"]
    assert segment["type"] == "array" and segment["minItems"] == segment["maxItems"] == 3


def test_examples_match_their_schemas(doc):
    for schema in doc["components"]["schemas"].values():
        if "example" in schema:
            assert_matches_schema(doc, schema, schema["example"])
    for path, method, op in operations(doc):
        for body in [op.get("requestBody", {})] + list(op["responses"].values()):
            for media in resolve(doc, body).get("content", {}).values():
                examples = [e["value"] for e in media.get("examples", {}).values()]
                examples += [media["example"]] if "example" in media else []
                for example in examples:
                    assert_matches_schema(doc, media["schema"], example)


# --- the document and the blueprint agree on routes --------------------------------

def registered_km_routes() -> set[tuple[str, str]]:
    app = Flask("routes")
    app.register_blueprint(km_api.bp)
    app.register_blueprint(meta_api.bp)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(PREFIX):])
            routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_every_km_route_is_documented_and_vice_versa(doc):
    documented = {(path, method) for path, method, _ in operations(doc)}
    registered = registered_km_routes()
    assert {("/relay", "post"), ("/abort", "post"), ("/pool/sync", "post"), ("/links", "get"),
            ("/links/{link_id}/exchange", "post"), ("/openapi.yaml", "get")} <= registered
    assert documented == registered


# --- the document and km_wire agree on field names ---------------------------------

@pytest.mark.parametrize("otp", [None, bytes(range(32))], ids=["first-hop", "relayed"])
def test_relay_schema_names_are_km_wire_names(doc, otp):
    wire = km_wire.relay_to_json(sample_relay(otp))
    optional = {"hop_pools"}
    assert set(wire) | optional == schema_props(doc, "RelayRequest")
    assert set(doc["components"]["schemas"]["RelayRequest"]["required"]) == set(wire)
    assert set(wire["route"][0]) == schema_props(doc, "Hop")
    assert set(wire["keys"][0]) | {"pqc_segments"} == schema_props(doc, "HopKey")
    hybrid = km_wire.relay_to_json(sample_relay(bytes(range(32)), hybrid=True))
    assert set(hybrid) == schema_props(doc, "RelayRequest") and set(hybrid["keys"][0]) == schema_props(doc, "HopKey")
    assert_matches_schema(doc, {"$ref": "#/components/schemas/RelayRequest"}, hybrid)
    request_body = doc["paths"]["/relay"]["post"]["requestBody"]["content"]["application/json"]
    assert_matches_schema(doc, request_body["schema"], wire)
    # and the document's examples are requests km_wire accepts
    for example in doc["paths"]["/relay"]["post"]["requestBody"]["content"]["application/json"]["examples"].values():
        assert km_wire.relay_to_json(km_wire.relay_from_json(example["value"])) == example["value"]


def test_segments_are_references_never_key_bits(doc):
    wire = km_wire.relay_to_json(sample_relay(bytes(32)))
    assert wire["keys"][0]["segments"] == [["link-B-C-17", 96, 20], ["link-B-C-19", 0, 12]]
    assert base64.b64decode(wire["keys"][0]["otp"], validate=True) == bytes(32)
    assert_matches_schema(doc, {"$ref": "#/components/schemas/Segment"}, wire["keys"][0]["segments"][0])


def test_link_half_schema_names_are_km_wire_names(doc):
    wire = km_wire.halves_to_json([SAMPLE_HALF], SAMPLE_LINK_MANAGER)
    assert set(wire) == schema_props(doc, "LinkHalves")
    assert set(wire["links"][0]) == schema_props(doc, "LinkHalf")
    assert set(doc["components"]["schemas"]["LinkHalf"]["required"]) == set(wire["links"][0])
    assert_matches_schema(doc, {"$ref": "#/components/schemas/LinkHalves"}, wire)
    assert km_wire.halves_from_json(wire) == [SAMPLE_HALF]


def test_link_manager_schema_names_are_km_wire_names(doc):
    wire = km_wire.halves_to_json([SAMPLE_HALF], SAMPLE_LINK_MANAGER)
    schema = doc["components"]["schemas"]["LinkManagerStatus"]
    assert set(wire["link_manager"]) == set(schema["properties"]) == set(schema["required"])
    assert set(schema["properties"]["state"]["enum"]) == set(typing.get_args(LinkManagerStateName))
    assert km_wire.link_manager_from_json(wire) == SAMPLE_LINK_MANAGER
    without = km_wire.halves_to_json([SAMPLE_HALF])
    assert "link_manager" not in without and km_wire.link_manager_from_json(without) is None
    assert_matches_schema(doc, {"$ref": "#/components/schemas/LinkHalves"}, without)


# --- what the blueprint answers conforms to the document ---------------------------

@dataclass
class FakeNetwork:
    kme_id: str = "KME_B"
    received: list = field(default_factory=list)

    def receive(self, request, caller):
        check_relay(request, caller, NODE_B)
        if request.request_id.startswith("busy"):
            raise Unavailable("relay request is still being handled")
        if request.request_id.startswith("aborted"):
            raise Conflict("relay request is aborted")
        self.received.append(request)

    def abort(self, request_id):
        return 1

    def discard_before(self, link_id, owner, sequence, offset):
        if link_id != "link-A-B":
            raise BadRequest("pool sync names a link this node is not an end of")
        return 4064

    def local_halves(self):
        return [SAMPLE_HALF]

    known_halves = local_halves


def node_der(ca, kme_id):
    return ca.issue_node_certificate(kme_id).certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def km_app():
    ca = CertificateAuthority.create("test CA")
    app = Flask("km-test")
    app.config.update(QKMS_NODE_CONFIG=NODE_B, QKMS_SAE_ID_FIELD="subject_cn")
    app.extensions["qkms.network"] = FakeNetwork()
    app.extensions["qkms.service"] = SimpleNamespace(sae_for_identity=lambda i: i if i == "sae-b1" else None,
                                                     link_manager_status=lambda: SAMPLE_LINK_MANAGER)
    errors.init_app(app)
    app.register_blueprint(km_api.bp)
    app.register_blueprint(meta_api.bp)
    certs = {name: node_der(ca, name) for name in ("KME_A", "KME_B", "KME_X")}
    certs["sae-b1"] = ca.issue_sae_certificate("sae-b1").certificate.public_bytes(serialization.Encoding.DER)
    return app, certs


def call(km_app, caller, method, path, **kwargs):
    app, certs = km_app
    environ = {PEER_CERT_ENVIRON_KEY: certs[caller]} if caller else {}
    return app.test_client().open(PREFIX + path, method=method, environ_base=environ, **kwargs)


def check_response(doc, path, method, response):
    responses = doc["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (response.status_code, response.get_data(as_text=True))
    spec = resolve(doc, responses[str(response.status_code)])
    media = response.mimetype
    assert media in spec["content"], media
    if media == "application/json":
        assert_matches_schema(doc, spec["content"][media]["schema"], response.get_json())
    return response


def relay_body(hop_index=1, otp=True, **changes):
    """A relay over the chain A-B-C; hop 0 ends at this node (KME_B) for its SAE."""
    wire = km_wire.relay_to_json(sample_relay(bytes(32) if otp else None))
    wire = {**wire, "hop_index": hop_index, **changes}
    if hop_index == 0:
        wire["route"] = wire["route"][:1]
        wire["slave_SAE_IDs"] = ["sae-b1"]
    return wire


@pytest.mark.parametrize("caller, path, method, kwargs, status", [
    ("KME_A", "/relay", "post", {"json": relay_body(hop_index=0, otp=False)}, 200),
    ("KME_A", "/relay", "post", {"json": relay_body(hop_index=0, otp=False, request_id="busy")}, 503),
    ("KME_A", "/relay", "post", {"json": relay_body(hop_index=0, otp=False, request_id="aborted")}, 409),
    ("KME_A", "/relay", "post", {"json": relay_body(hop_index=1)}, 400),  # hop B->C, not from A
    ("KME_A", "/relay", "post", {"json": relay_body(hop_index=5)}, 400),
    ("KME_A", "/relay", "post", {"json": {**relay_body(hop_index=0), "keys": []}}, 400),
    ("KME_A", "/relay", "post", {"data": b"[1]", "content_type": "application/json"}, 400),
    ("KME_X", "/relay", "post", {"json": relay_body(hop_index=0)}, 401),
    ("sae-b1", "/relay", "post", {"json": relay_body(hop_index=0)}, 401),
    (None, "/relay", "post", {"json": relay_body(hop_index=0)}, 401),
    ("KME_A", "/abort", "post", {"json": {"request_id": "r.KME_B"}}, 200),
    ("KME_A", "/abort", "post", {"json": {"request_id": ""}}, 400),
    ("KME_A", "/pool/sync", "post", {"json": {"link": "link-A-B", "owner": "KME_A", "sequence": 4,
                                              "offset": 0}}, 200),
    ("KME_A", "/pool/sync", "post", {"json": {"link": "link-A-B", "owner": "KME_B", "sequence": 4,
                                              "offset": 0}}, 400),
    ("KME_A", "/pool/sync", "post", {"json": {"link": "link-Q", "owner": "KME_A", "sequence": 4,
                                              "offset": 0}}, 400),
    ("KME_A", "/links", "get", {}, 200),
    ("KME_B", "/links", "get", {"query_string": {"all": "1"}}, 200),
    ("KME_X", "/links", "get", {}, 401),
    ("KME_A", "/openapi.yaml", "get", {}, 200),
    ("KME_B", "/openapi.yaml", "get", {}, 200),
    ("sae-b1", "/openapi.yaml", "get", {}, 200),
    ("KME_X", "/openapi.yaml", "get", {}, 401),
    (None, "/openapi.yaml", "get", {}, 401),
])
def test_blueprint_answers_conform(doc, km_app, caller, path, method, kwargs, status):
    response = check_response(doc, path, method, call(km_app, caller, method.upper(), path, **kwargs))
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 200 and path == "/openapi.yaml":
        assert yaml.safe_load(response.get_data(as_text=True)) == doc


def test_relay_result_names_the_request_and_the_outcome(doc, km_app):
    response = call(km_app, "KME_A", "POST", "/relay", json=relay_body(hop_index=0, otp=False))
    assert response.get_json() == {"request_id": sample_relay(None).request_id, "result": "reserved"}
    enum = doc["components"]["schemas"]["RelayResult"]["properties"]["result"]["enum"]
    assert set(enum) == {"reserved", "forwarded"}


def test_only_the_all_answer_carries_the_link_manager(km_app):
    assert "link_manager" not in call(km_app, "KME_A", "GET", "/links").get_json()
    body = call(km_app, "KME_B", "GET", "/links", query_string={"all": "1"}).get_json()
    assert km_wire.link_manager_from_json(body) == SAMPLE_LINK_MANAGER
