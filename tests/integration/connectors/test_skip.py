"""SKIP (draft-cisco-skip-02) between two "routers" whose SAEs sit at nodes A and C: the
initiating router asks its node for a key, passes the keyId, and the responding router
fetches the same key from its own node, hex-encoded, once; the key was relayed
through B. Every answer is checked against etsi_api/skip_openapi.yaml."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from adapters.etsi014_client import client_tls_context
from tests.support.openapi import assert_matches_schema, load, resolve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCUMENT = load(Path(__file__).resolve().parents[3] / "etsi_api" / "skip_openapi.yaml")


@pytest.fixture
def router(qnet):
    """An HTTPS client of a router's own node, at that node's SKIP base URL."""
    clients = []

    def open_router(sae_id: str) -> httpx.Client:
        sae = qnet.manifest["saes"][sae_id]
        base = qnet.manifest["nodes"][sae["node"]]["skip_url"]
        client = httpx.Client(base_url=base, verify=client_tls_context(qnet.manifest["ca"], sae["cert"], sae["key"]))
        clients.append(client)
        return client

    yield open_router
    for client in clients:
        client.close()


def checked(response: httpx.Response, template: str) -> dict:
    responses = DOCUMENT["paths"][template]["get"]["responses"]
    assert str(response.status_code) in responses, response.text
    assert_matches_schema(DOCUMENT, resolve(DOCUMENT, responses[str(response.status_code)])["content"]
                          ["application/json"]["schema"], response.json())
    return response.json()


def test_two_routers_get_the_same_key_in_hex_once(router):
    a, c = router("router-a"), router("router-c")
    capabilities = checked(a.get("/capabilities"), "/capabilities")
    assert capabilities["localSystemID"] == "router-a" and "router-c" in capabilities["remoteSystemID"]
    new = checked(a.get("/key", params={"remoteSystemID": "router-c", "size": 256}), "/key")
    assert new["qkms_provenance"]["route"] == ["A", "B", "C"]
    fetched = checked(c.get(f"/key/{new['keyId']}", params={"remoteSystemID": "router-a"}), "/key/{keyId}")
    assert fetched["keyId"] == new["keyId"] and len(bytes.fromhex(fetched["key"])) == 32
    assert hashlib.sha256(bytes.fromhex(fetched["key"])).digest() == hashlib.sha256(bytes.fromhex(new["key"])).digest()
    again = c.get(f"/key/{new['keyId']}", params={"remoteSystemID": "router-a"})
    assert again.status_code == 400
    assert again.json()["message"] == "one or more keys specified are not found on KME"


def test_an_unknown_remote_system_is_refused(router):
    a = router("router-a")
    response = a.get("/key", params={"remoteSystemID": "router-z"})
    assert response.status_code == 400 and checked(response, "/key")["message"] == "unknown slave_SAE_ID"
    key_id = checked(a.get("/key", params={"remoteSystemID": "router-c"}), "/key")["keyId"]
    wrong = router("router-c").get(f"/key/{key_id}", params={"remoteSystemID": "router-z"})
    assert wrong.status_code == 400


def test_entropy_comes_in_hex(router):
    body = checked(router("router-c").get("/entropy", params={"minentropy": 512}), "/entropy")
    assert body["minentropy"] == 512 and len(bytes.fromhex(body["randomStr"])) == 64
