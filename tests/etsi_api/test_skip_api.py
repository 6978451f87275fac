"""SKIP (draft-cisco-skip-02) on one node's app, in process: every method and error
path, each answer checked against etsi_api/skip_openapi.yaml. The same SAE certificates
and the same key service as ETSI 014 (the in-memory storage twins)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from openapi_spec_validator import OpenAPIV30SpecValidator

from etsi_api.app import create_app
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from etsi_api.skip_api import key_id_from_hex
from kms.config import parse_config
from kms.errors import BadRequest
from kms.node import assemble_node
from kms.pki import CertificateAuthority
from kms.storage import open_memory_storage
from tests.support.openapi import assert_matches_schema, load, resolve

DOCUMENT = Path(__file__).resolve().parents[2] / "etsi_api" / "skip_openapi.yaml"
CONFIG = parse_config({
    "kme_id": "KME-1", "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"}, "kek": {"file": "kek.hex"},
    "saes": [{"id": "router-a"}, {"id": "router-b"}, {"id": "other"}],
})


@pytest.fixture(scope="module")
def doc():
    return load(DOCUMENT)


@pytest.fixture(scope="module")
def app():
    storage = open_memory_storage(CONFIG.kme_id)
    node = assemble_node(CONFIG, storage)
    return create_app(CONFIG, node.service, storage.store)


@pytest.fixture(scope="module")
def certs():
    ca = CertificateAuthority.create("test CA")
    return {sae: ca.issue_sae_certificate(sae).certificate.public_bytes(serialization.Encoding.DER)
            for sae in ("router-a", "router-b", "other", "stranger")}


@pytest.fixture
def get(app, certs, doc):
    def call(path: str, caller: str | None = "router-a", method: str = "GET", check: bool = True):
        environ = {PEER_CERT_ENVIRON_KEY: certs[caller]} if caller else {}
        response = app.test_client().open(path, method=method, environ_base=environ)
        if check:
            check_response(doc, path.split("?")[0], response)
        return response
    return call


def check_response(doc, path: str, response) -> None:
    template = "/key/{keyId}" if path.startswith("/key/") else path
    responses = doc["paths"][template]["get"]["responses"]
    assert str(response.status_code) in responses, (response.status_code, response.get_data(as_text=True))
    schema = resolve(doc, responses[str(response.status_code)])["content"]["application/json"]["schema"]
    assert_matches_schema(doc, schema, response.get_json())


def test_the_document_is_valid_openapi(doc):
    errors = [error.message for error in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []


def test_the_document_has_the_drafts_four_methods(doc):
    assert {path: set(item) for path, item in doc["paths"].items()} == {
        "/capabilities": {"get"}, "/key": {"get"}, "/key/{keyId}": {"get"}, "/entropy": {"get"}}


def test_capabilities_name_the_caller_and_every_other_sae(get):
    body = get("/capabilities").get_json()
    assert body["localSystemID"] == "router-a" and body["entropy"] is body["key"] is True
    assert sorted(body["remoteSystemID"]) == ["other", "router-b"]


def test_a_key_is_delivered_once_to_each_side_in_hex(get):
    new = get("/key?remoteSystemID=router-b").get_json()
    assert len(new["keyId"]) == 32 and len(bytes.fromhex(new["key"])) == 32
    assert new["qkms_provenance"]["sources"] == ["csprng"]
    fetched = get(f"/key/{new['keyId']}?remoteSystemID=router-a", caller="router-b").get_json()
    assert fetched["keyId"] == new["keyId"]
    assert hashlib.sha256(bytes.fromhex(fetched["key"])).digest() == hashlib.sha256(bytes.fromhex(new["key"])).digest()
    again = get(f"/key/{new['keyId']}?remoteSystemID=router-a", caller="router-b")
    assert again.status_code == 400
    assert again.get_json()["message"] == "one or more keys specified are not found on KME"


def test_the_size_parameter_is_in_bits(get):
    assert len(bytes.fromhex(get("/key?remoteSystemID=router-b&size=128").get_json()["key"])) == 16


def test_only_the_remote_system_named_at_creation_gets_the_key(get):
    new = get("/key?remoteSystemID=router-b").get_json()
    assert get(f"/key/{new['keyId']}?remoteSystemID=router-a", caller="other").status_code == 401
    assert get(f"/key/{new['keyId']}?remoteSystemID=other", caller="router-b").status_code == 400
    # nothing was consumed by the refusals
    assert get(f"/key/{new['keyId']}?remoteSystemID=router-a", caller="router-b").status_code == 200


@pytest.mark.parametrize("query, status", [
    ("/key?remoteSystemID=nobody", 400),
    ("/key?remoteSystemID=router-a", 400),  # itself
    ("/key", 400),
    ("/key?remoteSystemID=router-b&remoteSystemID=other", 400),
    ("/key?remoteSystemID=router-b&size=12", 400),
    ("/key?remoteSystemID=router-b&size=abc", 400),
    ("/key?remoteSystemID=router-b&number=2", 400),
    ("/key/zz?remoteSystemID=router-b", 400),
    ("/key/" + "0" * 32 + "?remoteSystemID=router-b", 400),
    ("/entropy?minentropy=7", 400),
    ("/entropy?minentropy=0", 400),  # found by benchmarks/fuzz_interfaces.py: an empty randomStr
    ("/capabilities?x=1", 400),
])
def test_malformed_requests_are_400(get, query, status):
    response = get(query)
    assert response.status_code == status
    assert set(response.get_json()) <= {"message", "details"}


@pytest.mark.parametrize("caller", [None, "stranger"])
def test_callers_without_an_sae_certificate_are_401(get, caller):
    for path in ("/capabilities", "/key?remoteSystemID=router-b", "/entropy"):
        assert get(path, caller=caller).status_code == 401


def test_entropy_defaults_to_256_bits(get):
    assert len(bytes.fromhex(get("/entropy").get_json()["randomStr"])) == 32
    body = get("/entropy?minentropy=1024").get_json()
    assert body["minentropy"] == 1024 and len(bytes.fromhex(body["randomStr"])) == 128


def test_the_drafts_404_and_405(get):
    assert get("/key/a/b", check=False).status_code == 404
    response = get("/key?remoteSystemID=router-b", method="POST", check=False)
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    assert get("/capabilities", method="HEAD", check=False).status_code == 405
    # outside SKIP's paths the ETSI rules stay: an unknown route is a 400
    assert get("/nothing-here", check=False).status_code == 400


def test_key_ids_are_uuids_in_hex():
    key_id = uuid.uuid4()
    assert key_id_from_hex(key_id.hex.upper()) == str(key_id)
    for bad in ("", key_id.hex[:-1], str(key_id), "g" * 32):
        with pytest.raises(BadRequest):
            key_id_from_hex(bad)
