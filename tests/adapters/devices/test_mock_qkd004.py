"""The mock device's ETSI 004 push mode follows the published API (AIT), as transcribed
in etsi_api/qkd004_openapi.yaml: every answer of a pair of mock devices (their real
apps, in one process) and every chunk they push is validated against the document;
the node's own client sends what the document defines. Both devices push the same
bytes under the same stream and index."""

from __future__ import annotations

import base64
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from adapters.devices.client004 import Qkd004Client
from adapters.devices.mock.app import create_device_app
from adapters.devices.mock.config import MockDeviceConfig
from adapters.devices.mock.faults import FaultSet, parse_fault
from adapters.devices.mock.kme import MockKme, PeerDevice
from adapters.devices.mock.qkd004 import KeyStreams, peer004_bp, qkd004_bp
from adapters.devices.settings import parse_settings
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.keys import KeyBlock
from kms.pki import CertificateAuthority
from kms.sources import SourceContext
from tests.support.openapi import assert_matches_schema, resolve

LINK = "A-B"
NAMES = {"A": "qkd-a", "B": "qkd-b"}
KMS = {"A": "kms-a", "B": "kms-b"}
PREFIX = "/api/v1/kms/etsi004/"


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(files("etsi_api").joinpath("qkd004_openapi.yaml").read_text())


class Peer(PeerDevice):
    def __init__(self) -> None:
        self.streams: KeyStreams | None = None
        self.kme: MockKme | None = None

    def call(self, what: str, body: dict[str, Any]) -> dict[str, Any] | None:
        body = json.loads(json.dumps(body))
        if what == "qkd004/stream":
            return self.streams.peer_stream(body)
        if what == "qkd004/chunk":
            return self.streams.peer_chunk(body)
        return self.kme.hold_for_peer(body)


class Pair:
    """Two mock devices in one process; what they pushed is kept per device."""

    def __init__(self, root: Path) -> None:
        ca = CertificateAuthority.create()
        self.der = {end: ca.issue_sae_certificate(KMS[end]).certificate.public_bytes(serialization.Encoding.DER)
                    for end in NAMES}
        self.pushed: dict[str, list[dict]] = {"A": [], "B": []}
        self.faults = {end: FaultSet() for end in NAMES}
        peers = {end: Peer() for end in NAMES}
        self.kmes, self.streams, self.apps = {}, {}, {}
        for end, other in (("A", "B"), ("B", "A")):
            config = MockDeviceConfig(name=NAMES[end], peer_name=NAMES[other], link_id=LINK, listen={"port": 0},
                                      control_listen={"port": 0}, tls={"cert": "x", "key": "x", "ca": "x"},
                                      peer_url="https://127.0.0.1:9", saes=[{"id": KMS[end]}], peer_saes=[KMS[other]],
                                      simulation={}, push_url="https://127.0.0.1:7/api/v1/qkd/etsi004/key-material")
            self.kmes[end] = MockKme(config, self.faults[end], peers[end])
            self.streams[end] = KeyStreams(config, self.kmes[end], self.faults[end],
                                           httpx.MockTransport(self._receiver(end)))
            self.apps[end] = create_device_app(self.kmes[end], self.faults[end], (qkd004_bp, peer004_bp),
                                               {"qkms.mock.streams": self.streams[end]})
        for end, other in (("A", "B"), ("B", "A")):
            peers[end].streams, peers[end].kme = self.streams[other], self.kmes[other]
        rng = np.random.default_rng(11)
        for sequence in range(4):
            block = KeyBlock(f"{LINK}:{sequence}", rng.bytes(4096), sequence)
            for kme in self.kmes.values():
                kme.add_block(block)

    def _receiver(self, end: str):
        def handle(request: httpx.Request) -> httpx.Response:
            self.pushed[end].append(json.loads(request.content))
            return httpx.Response(201, json={"status": 0})
        return handle

    def call(self, end: str, method: str, operation: str, body: dict) -> Any:
        return self.apps[end].test_client().open(PREFIX + operation, method=method, json=body,
                                                 environ_base={PEER_CERT_ENVIRON_KEY: self.der[end]})


def qos(**changes) -> dict:
    return {"key_chunk_size": 32, "ttl": 600, "metadata_mimetype": "application/json", **changes}


def opened(pair: Pair) -> str:
    first = pair.call("A", "POST", "open-connect", {"source": "urn:qkms:kme:A", "destination": "urn:qkms:kme:B",
                                                     "qos": qos()})
    ksid = first.get_json()["key_stream_id"]
    pair.call("B", "POST", "open-connect", {"source": "urn:qkms:kme:B", "destination": "urn:qkms:kme:A",
                                            "key_stream_id": ksid, "qos": qos()})
    return ksid


def check(doc: dict, operation: str, method: str, response) -> dict | None:
    """The answer's status and body are among those the document defines for the call."""
    declared = doc["paths"][PREFIX + operation][method.lower()]["responses"]
    assert str(response.status_code) in declared, response.status_code
    content = resolve(doc, declared[str(response.status_code)]).get("content")
    if content is None:
        assert response.data == b""
        return None
    assert_matches_schema(doc, content["application/json"]["schema"], response.get_json())
    return response.get_json()


def request_schema(doc: dict, path: str, method: str) -> dict:
    return doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return Pair(tmp_path)


def test_opening_a_stream_at_both_devices(pair: Pair, doc: dict) -> None:
    body = {"source": "urn:qkms:kme:A", "destination": "urn:qkms:kme:B", "qos": qos()}
    assert_matches_schema(doc, request_schema(doc, PREFIX + "open-connect", "post"), body)
    first = check(doc, "open-connect", "POST", pair.call("A", "POST", "open-connect", body))
    assert first["status"] == 1 and first["qos"]["key_chunk_size"] == 32
    second = pair.call("B", "POST", "open-connect", {**body, "key_stream_id": first["key_stream_id"]})
    assert check(doc, "open-connect", "POST", second)["status"] == 0
    again = pair.call("B", "POST", "open-connect", {**body, "key_stream_id": first["key_stream_id"]})
    assert again.status_code == 400 and check(doc, "open-connect", "POST", again) == {"status": 5}


def test_both_devices_push_the_same_chunks_in_the_document_s_form(pair: Pair, doc: dict) -> None:
    ksid = opened(pair)
    for end in NAMES:
        answer = pair.call(end, "GET", "get-key", {"key_stream_id": ksid, "index": 0})
        assert answer.status_code == 205 and check(doc, "get-key", "GET", answer) == {"status": 0}
    for _ in range(3):
        pair.streams["A"].push_once()
        pair.streams["B"].push_once()
    assert len(pair.pushed["A"]) == len(pair.pushed["B"]) == 3
    schema = request_schema(doc, "/api/v1/qkd/etsi004/key-material", "post")
    for pushed_a, pushed_b in zip(pair.pushed["A"], pair.pushed["B"]):
        assert_matches_schema(doc, schema, pushed_a)
        assert_matches_schema(doc, schema, pushed_b)
        assert pushed_a["metadata"]["buffer"]["key_stream_id"] == ksid
        assert (pushed_a["index"], pushed_a["key_buffer"]) == (pushed_b["index"], pushed_b["key_buffer"])
        assert len(base64.b64decode(pushed_a["key_buffer"])) == 32
    assert [p["index"] for p in pair.pushed["A"]] == [0, 1, 2]


def test_get_key_before_the_peer_opened_is_status_3(pair: Pair, doc: dict) -> None:
    first = pair.call("A", "POST", "open-connect", {"source": "urn:a", "destination": "urn:b", "qos": qos()})
    answer = pair.call("A", "GET", "get-key", {"key_stream_id": first.get_json()["key_stream_id"]})
    assert answer.status_code == 400 and check(doc, "get-key", "GET", answer) == {"status": 3}


def test_a_qos_the_device_cannot_meet_gets_a_counter_proposal(pair: Pair, doc: dict) -> None:
    answer = pair.call("A", "POST", "open-connect", {"source": "urn:a", "destination": "urn:b",
                                                     "qos": qos(key_chunk_size=33)})
    assert answer.status_code == 500
    assert check(doc, "open-connect", "POST", answer) == {"status": 7, "qos": qos(key_chunk_size=32)}


def test_closing_a_stream(pair: Pair, doc: dict) -> None:
    ksid = opened(pair)
    closed = pair.call("A", "PUT", "close", {"key_stream_id": ksid})
    assert closed.status_code == 204 and check(doc, "close", "PUT", closed) is None
    again = pair.call("A", "GET", "get-key", {"key_stream_id": ksid})
    assert again.status_code == 500 and check(doc, "get-key", "GET", again) == {"status": 4}


@pytest.mark.parametrize("fault, operation, code, http", [
    ("open-status:status=4", "open-connect", 4, 500), ("open-status:status=6", "open-connect", 6, 500),
    ("get-key-status:status=2", "get-key", 2, 500), ("get-key-status:status=8", "get-key", 8, 400),
])
def test_a_device_told_to_answer_a_status_answers_it(pair: Pair, doc: dict, fault, operation, code, http) -> None:
    ksid = opened(pair)
    pair.faults["A"].set(parse_fault(fault))
    method = "POST" if operation == "open-connect" else "GET"
    body = {"source": "urn:a", "destination": "urn:b", "qos": qos()} if method == "POST" else {"key_stream_id": ksid}
    answer = pair.call("A", method, operation, body)
    assert answer.status_code == http and check(doc, operation, method, answer) == {"status": code}


def test_only_the_device_s_kms_may_use_it(pair: Pair) -> None:
    answer = pair.apps["A"].test_client().post(PREFIX + "open-connect", json={}, environ_base={
        PEER_CERT_ENVIRON_KEY: pair.der["B"]})
    assert answer.status_code == 401


def test_the_node_s_client_sends_what_the_document_defines(doc: dict, tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    ca.save(tmp_path / "ca.crt", tmp_path / "ca.key")
    ca.issue_sae_certificate("kms-a").save(tmp_path / "n.crt", tmp_path / "n.key")
    settings = parse_settings({"url": "https://qkd-a", "cert": "n.crt", "key": "n.key", "ca": "ca.crt"},
                              SourceContext("A", "B", LINK, str(tmp_path)), "etsi004", "qkd-device-004", "etsi004-push")
    sent = []

    def device(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path, json.loads(request.content)))
        answers = {"open-connect": (201, {"source": "urn:a", "destination": "urn:b", "qos": qos(), "status": 1,
                                          "key_stream_id": "4eb81a5c-031f-4d1f-881d-309bee44fc20"}),
                   "get-key": (205, {"status": 0}), "close": (204, None)}
        code, body = answers[request.url.path.rsplit("/", 1)[1]]
        return httpx.Response(code, json=body) if body else httpx.Response(code)

    client = Qkd004Client(settings, httpx.MockTransport(device))
    ksid, status, _ = client.open_connect("urn:qkms:kme:A", "urn:qkms:kme:B", qos())
    client.get_key(ksid, 0)
    client.close(ksid)
    assert status == 1 and [(m, p.rsplit("/", 1)[1]) for m, p, _ in sent] == [
        ("POST", "open-connect"), ("GET", "get-key"), ("PUT", "close")]
    for method, path, body in sent:
        assert_matches_schema(doc, request_schema(doc, path, method.lower()), body)
