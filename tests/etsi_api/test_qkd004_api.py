"""POST /api/v1/qkd/etsi004/key-material (etsi_api/qkd004_api.py): a node takes the chunks
its links' QKD devices push, from those devices only; answers match the document
(etsi_api/qkd004_openapi.yaml). Over Flask's test client, storage in memory."""

from __future__ import annotations

import base64
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from etsi_api.app import create_app
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.config import parse_config
from kms.node import assemble_node
from kms.pki import CertificateAuthority
from kms.storage import open_memory_storage
from tests.support.openapi import assert_matches_schema, resolve

KSID = "4eb81a5c-031f-4d1f-881d-309bee44fc20"
PATH = "/api/v1/qkd/etsi004/key-material"


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(files("etsi_api").joinpath("qkd004_openapi.yaml").read_text())


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("qkd004")
    ca = CertificateAuthority.create()
    for name in ("node.crt", "node.key", "ca.crt"):
        (root / name).write_bytes(b"placeholder")
    config = parse_config({
        "kme_id": "A", "tls": {"cert": "node.crt", "key": "node.key", "ca": "ca.crt"}, "kek": {"file": "kek.hex"},
        "saes": [{"id": "sae-a"}], "peers": [{"kme_id": "B", "url": "https://127.0.0.1:9", "saes": ["sae-b"]}],
        "links": [{"id": "A-B", "nodes": ["A", "B"], "source": {
            "kind": "qkd-device-004", "url": "https://127.0.0.1:8", "cert": "node.crt", "key": "node.key",
            "ca": "ca.crt", "server_name": "qkd-a", "key_chunk_size_bytes": 32}}],
    }, root)
    storage = open_memory_storage("A")
    assembled = assemble_node(config, storage)
    app = create_app(config, assembled.service, storage.store, assembled.network, assembled.responders)

    def der(issued) -> bytes:
        return issued.certificate.public_bytes(serialization.Encoding.DER)

    certs = {"device": der(ca.issue_device_certificate("qkd-a")), "other": der(ca.issue_device_certificate("qkd-x")),
             "sae": der(ca.issue_sae_certificate("sae-a"))}
    return app, storage, certs


def push(node, body, caller: str | None = "device"):
    app, _, certs = node
    environ = {PEER_CERT_ENVIRON_KEY: certs[caller]} if caller else {}
    return app.test_client().post(PATH, json=body, environ_base=environ)


def chunk(index: int, size: int = 32, status: int = 0) -> dict:
    return {"status": status, "index": index, "key_buffer": base64.b64encode(bytes([index]) * size).decode(),
            "metadata": {"size": 57, "buffer": {"key_stream_id": KSID}}}


def check(doc, response, code: int) -> None:
    assert response.status_code == code
    declared = resolve(doc, doc["paths"][PATH]["post"]["responses"][str(code)])
    if "content" in declared:
        assert_matches_schema(doc, declared["content"]["application/json"]["schema"], response.get_json())


def test_a_device_s_chunk_goes_to_its_link(node, doc) -> None:
    assert_matches_schema(doc, doc["paths"][PATH]["post"]["requestBody"]["content"]["application/json"]["schema"],
                          chunk(7))
    response = push(node, chunk(7))
    check(doc, response, 201)
    assert response.get_json() == {"status": 0}
    (stored,) = node[1].inbox.take("A-B#pushed", 10)
    assert (stored.block_id, stored.sequence, stored.material) == (f"{KSID}:7", 7, bytes([7]) * 32)


@pytest.mark.parametrize("caller", [None, "other", "sae"])
def test_any_other_caller_is_refused(node, caller) -> None:
    assert push(node, chunk(1), caller).status_code == 401
    assert node[1].inbox.waiting("A-B#pushed") == 0


@pytest.mark.parametrize("body, message", [
    ({**chunk(1), "index": -1}, "index must be a uint32"),
    ({**chunk(1), "index": 2**32}, "index must be a uint32"),
    ({**chunk(1), "status": "0"}, "status must be a uint32"),
    ({**chunk(1), "key_buffer": "not base64!"}, "key_buffer must be non-empty standard Base64"),
    ({**chunk(1), "metadata": {"buffer": {}}}, "metadata.buffer.key_stream_id must name the key stream"),
    (chunk(1, size=31), "key_buffer holds 31 bytes; this link's chunks are 32"),
])
def test_a_malformed_push_is_a_400_and_keeps_nothing(node, doc, body, message) -> None:
    response = push(node, body)
    check(doc, response, 400)
    assert response.get_json()["message"] == message and node[1].inbox.waiting("A-B#pushed") == 0


def test_a_push_without_a_key_is_acknowledged_and_keeps_nothing(node, doc) -> None:
    check(doc, push(node, chunk(2, status=2)), 201)
    assert node[1].inbox.waiting("A-B#pushed") == 0
