"""The admin API (etsi_api/admin_api.py) on one node with in-memory storage: its
document is valid and names every route; only a listed administrator's certificate
gets in (401 for SAE and node certificates, before anything is read or changed); a
bad change is a 400 naming the field and changes nothing; a conflict is a 409; what
it answers conforms to etsi_api/admin_openapi.yaml; a change takes effect on the
node's next request (the service knows a new SAE, routing avoids a paused link)."""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from openapi_spec_validator import OpenAPIV30SpecValidator

from etsi_api import admin_api
from etsi_api.app import create_app
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.config import parse_config
from kms.errors import Unavailable
from kms.link_board import LinkHalf
from kms.node import NodeRuntime
from kms.pki import CertificateAuthority
from kms.storage import open_memory_storage
from tests.support.openapi import assert_matches_schema, load, operations, registered_routes, resolve

DOCUMENT = Path(__file__).resolve().parents[2] / "etsi_api" / "admin_openapi.yaml"
PREFIX = "/admin/v1"
SIM = {"kind": "simulated", "seed_file": "links/A-B.seed", "eve_file": "eve/A-B.json", "frame_interval_s": 4}
BASE = {
    "kme_id": "A", "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"}, "kek": {"env": "QKMS_TEST_KEK"},
    "saes": [{"id": "sae-a"}], "admins": ["ops"],
    "peers": [{"kme_id": "B", "url": "https://127.0.0.1:1", "saes": ["sae-b"]},
              {"kme_id": "C", "url": "https://127.0.0.1:2", "saes": ["sae-c"]}],
    "links": [{"id": "A-B", "nodes": ["A", "B"], "policy": "qkd-then-pqc", "source": SIM,
               "pqc": {"kind": "ml-kem"}},
              {"id": "B-C", "nodes": ["B", "C"], "source": {"kind": "simulated"}}],
}


class RecordingTransport:
    """Stands in for the KM channel: every push is recorded; B answers, C is down."""

    def __init__(self):
        self.pushed: list[tuple[str, str]] = []

    def reconfigure(self, config):
        pass

    def push_changes(self, peer, changes):
        if peer == "C":
            raise Unavailable("peer C did not accept the request")
        self.pushed += [(peer, change.op) for change in changes]


@pytest.fixture(scope="module")
def doc():
    return load(DOCUMENT)


@pytest.fixture(scope="module")
def certs():
    ca = CertificateAuthority.create("test CA")
    issued = {"ops": ca.issue_admin_certificate("ops"), "intruder": ca.issue_admin_certificate("intruder"),
              "sae-a": ca.issue_sae_certificate("sae-a"), "B": ca.issue_node_certificate("B"),
              "A": ca.issue_node_certificate("A")}
    return {name: cert.certificate.public_bytes(serialization.Encoding.DER) for name, cert in issued.items()}


class MeetingTransport(RecordingTransport):
    """Every push waits until the pushes to all ``peers`` have begun: pushes made one
    after another never meet (the first one's wait times out and breaks the barrier)."""

    def __init__(self, peers: int):
        super().__init__()
        self.barrier = threading.Barrier(peers, timeout=30)

    def push_changes(self, peer, changes):
        self.barrier.wait()
        self.pushed += [(peer, change.op) for change in changes]


class AdminNode:
    def __init__(self, certs, transport=None):
        self.config = parse_config(BASE, Path("/nonexistent"))
        self.storage = open_memory_storage("A")
        self.transport = transport or RecordingTransport()
        self.runtime = NodeRuntime(self.config, self.storage, self.transport)
        view, node = self.runtime.current()
        self.app = create_app(view.config, node.service, self.storage.store, node.network, node.responders, None,
                              self.runtime)
        self.certs = certs

    def call(self, method: str, path: str, caller: str | None = "ops", **kwargs):
        environ = {PEER_CERT_ENVIRON_KEY: self.certs[caller]} if caller else {}
        return self.app.test_client().open(PREFIX + path, method=method, environ_base=environ, **kwargs)

    def version(self) -> int:
        return self.storage.changes.version()


@pytest.fixture
def node(certs) -> AdminNode:
    return AdminNode(certs)


def check_response(doc, path: str, method: str, response):
    responses = doc["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (response.status_code, response.get_data(as_text=True))
    spec = resolve(doc, responses[str(response.status_code)])
    assert response.mimetype in spec["content"], response.mimetype
    if response.mimetype == "application/json":
        assert_matches_schema(doc, spec["content"]["application/json"]["schema"], response.get_json())
    return response


# --- the document ----------------------------------------------------------------------

def test_the_document_is_valid_openapi(doc):
    assert [error.message for error in OpenAPIV30SpecValidator(doc).iter_errors()] == []
    assert doc["servers"] == [{"url": PREFIX, "description": doc["servers"][0]["description"]}]
    assert doc["x-qkms-mutual-tls"]["on_failure"] == 401


def test_every_admin_route_is_documented_and_vice_versa(doc):
    expanded = set()
    for path, method in registered_routes(PREFIX, admin_api.bp):
        if path == "/links/{link_id}/{action}":
            expanded |= {(f"/links/{{link_id}}/{action}", method) for action in admin_api.LINK_STATES}
        else:
            expanded.add((path, method))
    assert {(path, method) for path, method, _ in operations(doc)} == expanded


def test_every_operation_documents_401_and_error_bodies(doc):
    for path, method, op in operations(doc):
        assert {"200", "400", "401", "503"} <= set(op["responses"]), f"{method} {path}"
        for code, response in op["responses"].items():
            if code != "200":
                schema = resolve(doc, response)["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


def test_examples_match_their_schemas(doc):
    for schema in doc["components"]["schemas"].values():
        if "example" in schema:
            assert_matches_schema(doc, schema, schema["example"])


# --- who may call it ---------------------------------------------------------------------

ROUTES = [("GET", "/nodes", None), ("POST", "/nodes", {"kme_id": "D", "url": "https://127.0.0.1:3"}),
          ("GET", "/links", None), ("POST", "/links", {"link": {"id": "A-C", "nodes": ["A", "C"]}}),
          ("PUT", "/links/A-B/policy", {"policy": "hybrid"}), ("POST", "/links/A-B/pause", None),
          ("POST", "/links/A-B/resume", None), ("POST", "/links/A-B/drain", None),
          ("POST", "/links/A-B/destroy", None), ("POST", "/links/A-B/eavesdropper", {"attack": None}),
          ("GET", "/saes", None), ("POST", "/saes", {"id": "sae-new"}), ("DELETE", "/saes/sae-b", None),
          ("GET", "/changes", None), ("GET", "/openapi.yaml", None)]


@pytest.mark.parametrize("caller", [None, "sae-a", "B", "A", "intruder"],
                         ids=["no-certificate", "sae", "peer-node", "own-node", "unlisted-admin"])
@pytest.mark.parametrize("method, path, body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_callers_without_the_admin_role_get_401_and_change_nothing(doc, node, caller, method, path, body):
    response = node.call(method, path, caller, json=body)
    assert response.status_code == 401
    assert response.get_json() == {"message": "an administrator certificate of this node is required"}
    assert node.version() == 0 and node.transport.pushed == []
    check_response(doc, re.sub(r"/links/A-B/", "/links/{link_id}/", re.sub(r"/saes/sae-b$", "/saes/{sae_id}", path)),
                   method.lower(), response)


# --- bad changes -------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body, message", [
    ("PUT", "/links/A-B/policy", {"policy": "quantum-only"}, r"^policy: Input should be 'qkd-only'"),
    ("PUT", "/links/A-B/policy", {"policy": "qkd-then-pqc", "fallback_below_bits": -1},
     r"^fallback_below_bits: must be an integer >= 0"),
    ("PUT", "/links/A-B/policy", {"policy": "hybrid", "colour": "blue"}, r"^colour: unknown field"),
    ("PUT", "/links/B-C/policy", {"policy": "hybrid"},
     r"^links\[1\]\.pqc: a hybrid link needs a pqc section, and this link was configured without one"),
    ("PUT", "/links/Z-Q/policy", {"policy": "hybrid"}, r"^link: unknown link Z-Q"),
    ("POST", "/links/Z-Q/pause", None, r"^link: unknown link Z-Q"),
    ("POST", "/saes", {"id": "sae-x", "node": "Q"}, r"^node: unknown node Q"),
    ("POST", "/saes", {"id": "bad id!"}, r"^id: String should match pattern"),
    ("POST", "/saes", {"id": "sae-x", "colour": "blue"}, r"^colour: unknown field"),
    ("DELETE", "/saes/sae-nobody", None, r"^id: no SAE sae-nobody in the network"),
    ("POST", "/nodes", {"kme_id": "D", "url": "http://127.0.0.1:3"}, r"^url: String should match pattern"),
    # Found by fuzzing the admin API: stored, a URL the KM client cannot parse failed every later request.
    ("POST", "/nodes", {"kme_id": "D", "url": "https://\u00a0"}, r"^url: must be https://HOST\[:PORT\]"),
    ("POST", "/nodes", {"kme_id": "D", "url": "https://1.2.3.999"}, r"^url: 1\.2\.3\.999 is not an IP address"),
    ("POST", "/nodes", {"kme_id": "D", "url": "https://[::1]:70000"}, r"^url: port 70000 is not between"),
    # Found by fuzzing too: a new node's SAE_IDs follow the one ID grammar of the rest of the config.
    ("POST", "/nodes", {"kme_id": "D", "url": "https://127.0.0.1:3", "saes": ["sae\u0007"]},
     r"^saes\[0\]: String should match"),
    ("POST", "/links", {"link": {"id": "A-Q", "nodes": ["A", "Q"]}}, r"^links\[2\]\.nodes: unknown node Q"),
    ("POST", "/links", {"link": {"id": "A-C", "nodes": ["A", "C"], "policy": "hybrid"}},
     r"^link\.pqc: a hybrid link needs a pqc section"),
    ("POST", "/links", {"link": {"id": "A-C", "nodes": ["A", "C"]}, "at": {"B": {}}}, r"^at: B is not an end"),
    ("POST", "/links/A-B/eavesdropper", {"attack": "x-ray"}, r"^attack: must be one of"),
    ("POST", "/links/A-B/eavesdropper", {"attack": "pns", "fraction": 1.5}, r"^fraction: must be a number"),
    ("POST", "/links/A-B/eavesdropper", {"fraction": 0.5}, r"^attack: required"),
    ("POST", "/saes", None, r"request body|JSON"),
])
def test_a_bad_change_is_a_400_naming_the_field_and_changes_nothing(doc, node, method, path, body, message):
    before = node.call("GET", "/links").get_json(), node.call("GET", "/saes").get_json()
    response = node.call(method, path, json=body)
    assert response.status_code == 400, response.get_json()
    assert re.search(message, response.get_json()["message"]), response.get_json()["message"]
    assert node.version() == 0 and node.transport.pushed == []
    assert (node.call("GET", "/links").get_json(), node.call("GET", "/saes").get_json()) == before


@pytest.mark.parametrize("setup, method, path, body, message", [
    ([], "POST", "/saes", {"id": "sae-b"}, "SAE sae-b is already attached to node B"),
    ([], "POST", "/nodes", {"kme_id": "B", "url": "https://127.0.0.1:9"}, "node B is already part of the network"),
    ([], "POST", "/links", {"link": {"id": "A-B", "nodes": ["A", "B"]}}, "link A-B already exists"),
    ([], "POST", "/links/A-B/destroy", None, "link A-B is active: pause or drain it"),
    ([], "POST", "/links/B-C/eavesdropper", {"attack": "pns"}, "no simulated QKD source with an eve_file"),
    ([("DELETE", "/saes/sae-b", None)], "POST", "/saes", {"id": "sae-b", "node": "B"},
     "SAE sae-b was removed less than reservation_ttl_s ago"),
])
def test_a_conflicting_change_is_a_409_and_changes_nothing(doc, node, setup, method, path, body, message):
    for step in setup:
        assert node.call(step[0], step[1], json=step[2]).status_code == 200
    version = node.version()
    response = node.call(method, path, json=body)
    assert response.status_code == 409 and message in response.get_json()["message"]
    assert node.version() == version


# --- changes that apply -------------------------------------------------------------------

def test_an_added_sae_is_served_by_the_next_request(doc, node):
    assert node.app.extensions["qkms.service"].sae_for_identity("sae-a2") is None
    response = check_response(doc, "/saes", "post", node.call("POST", "/saes", json={"id": "sae-a2"}))
    body = response.get_json()
    assert body["before"] == {"node": None} and body["after"] == {"node": "A"}
    assert body["change"]["admin"] == "ops" and body["change"]["origin"] == "A"
    # every node must know at once: the slave's node refuses a master SAE it has not heard of
    assert [(p["node"], p["acknowledged"]) for p in body["propagation"]] == [("B", True), ("C", False)]
    node.call("GET", "/saes")
    assert node.app.extensions["qkms.service"].sae_for_identity("sae-a2") == "sae-a2"
    assert {"id": "sae-a2", "node": "A", "local": True, "cert_identity": "sae-a2"} in \
        node.call("GET", "/saes").get_json()["saes"]


def test_a_change_is_pushed_to_the_nodes_that_must_know_it(doc, node):
    body = check_response(doc, "/links/{link_id}/pause", "post", node.call("POST", "/links/A-B/pause")).get_json()
    assert body["propagation"] == [{"node": "B", "required": True, "acknowledged": True, "reason": ""}]
    body = node.call("DELETE", "/saes/sae-c").get_json()
    assert body["propagation"] == [{"node": "B", "required": True, "acknowledged": True, "reason": ""},
                                   {"node": "C", "required": True, "acknowledged": False,
                                    "reason": "peer C did not accept the request"}]
    assert node.transport.pushed == [("B", "set-link-state"), ("B", "remove-sae")]


def test_a_change_is_pushed_to_every_peer_at_once(certs):
    """A peer that is down costs its timeout once per change, not once per peer before it."""
    node = AdminNode(certs, MeetingTransport(peers=2))
    body = node.call("POST", "/saes", json={"id": "sae-a2", "node": "A"}).get_json()
    assert [(p["node"], p["acknowledged"]) for p in body["propagation"]] == [("B", True), ("C", True)]
    assert sorted(node.transport.pushed) == [("B", "put-sae"), ("C", "put-sae")]


def test_a_new_node_is_pushed_to_itself_and_every_peer(node):
    """So that a link to it can be added next at any node, before gossip has run."""
    body = node.call("POST", "/nodes", json={"kme_id": "D", "url": "https://127.0.0.1:3"}).get_json()
    assert [(p["node"], p["acknowledged"]) for p in body["propagation"]] == [("B", True), ("C", False), ("D", True)]


def test_a_paused_link_is_off_every_route_and_its_state_is_listed(doc, node):
    network = node.runtime.current()[1].network
    assert network.available_bits("A-B", "A") >= 0
    node.call("POST", "/links/A-B/pause")
    node.call("GET", "/links")
    paused = node.app.extensions["qkms.network"]
    assert paused.hop_material("A-B", "A", 8, {}) == (None, 0)
    links = check_response(doc, "/links", "get", node.call("GET", "/links")).get_json()["links"]
    assert [(link["id"], link["state"]) for link in links] == [("A-B", "paused"), ("B-C", "active")]


def test_a_policy_switch_takes_effect_at_its_effective_at(doc, node):
    body = node.call("PUT", "/links/A-B/policy", json={"policy": "hybrid"}).get_json()
    assert body["change"]["effective_at"] > body["change"]["at"]
    assert body["before"]["policy"] == "qkd-then-pqc" and body["after"]["policy"] == "hybrid"
    changes = check_response(doc, "/changes", "get", node.call("GET", "/changes")).get_json()["changes"]
    assert [(c["op"], c["applied"]) for c in changes] == [("set-policy", False)]  # 2 s ahead


def test_links_list_health_qber_pool_and_rate(doc, node):
    node.storage.board.publish([LinkHalf("A-B", "A", 4096, "degraded", "frame 3: QBER rose from 2.0% to 9.0%: "
                                         "possible eavesdropper", {"qber": 0.09, "fill_rate_bps": 512.0}, 1e12)])
    links = check_response(doc, "/links", "get", node.call("GET", "/links")).get_json()["links"]
    half = links[0]["halves"][0]
    assert (half["pool"], half["owner"], half["state"], half["qber"], half["key_rate_bps"],
            half["available_bits"]) == ("A-B", "A", "degraded", 0.09, 512.0, 4096)
    assert links[0]["source"] == "simulated" and links[0]["pqc"] == "ml-kem"
    assert [h["state"] for h in links[1]["halves"]] == ["unknown", "unknown"]


def test_nodes_and_the_document_are_served(doc, node):
    nodes = check_response(doc, "/nodes", "get", node.call("GET", "/nodes")).get_json()
    assert [(n["kme_id"], n["self"], n["links"]) for n in nodes["nodes"]] == [
        ("A", True, ["A-B"]), ("B", False, ["A-B", "B-C"]), ("C", False, ["B-C"])]
    assert yaml.safe_load(node.call("GET", "/openapi.yaml").get_data(as_text=True)) == doc


def test_every_change_is_audited_with_who_before_and_after(node, caplog):
    with caplog.at_level(logging.INFO, logger="qkms.audit"):
        node.call("POST", "/links/A-B/drain")
        node.call("POST", "/links/A-B/eavesdropper", json={"attack": "intercept-resend", "fraction": 1.0})
    entries = [json.loads(r.getMessage()) for r in caplog.records if r.name == "qkms.audit"]
    assert [(e["event"], e["op"], e["admin"], e["node"]) for e in entries] == [
        ("admin_change", "set-link-state", "ops", "A"), ("admin_change", "set-eavesdropper", "ops", "A")]
    assert entries[0]["before"]["state"] == "active" and entries[0]["after"]["state"] == "draining"
    assert entries[1]["before"] is None and entries[1]["after"] == {"attack": "intercept-resend", "fraction": 1.0}
    assert entries[1]["effective_at"] % 4 == 2  # the middle of a 4 s frame slot
