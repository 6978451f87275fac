"""The reusable ETSI 014 client: what it returns, what it raises, and the expected name
of the KME's certificate (never switched off)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from adapters.etsi014_client import Etsi014Client, Etsi014Error, Etsi014ProtocolError
from kms.pki import CertificateAuthority

KEY_ID = "9f78334b-c0a2-409c-930a-d97cdcbdd8cb"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("client")
    ca = CertificateAuthority.create()
    ca.save(root / "ca.crt", root / "ca.key")
    ca.issue_sae_certificate("sae-1").save(root / "sae.crt", root / "sae.key")
    return {"cert": root / "sae.crt", "key": root / "sae.key", "ca": root / "ca.crt"}


def client(files, handler, **kwargs) -> Etsi014Client:
    return Etsi014Client("https://kme.example:8443", files["cert"], files["key"], files["ca"],
                         transport=httpx.MockTransport(handler), **kwargs)


def answer(status: int, body, headers=None):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content, headers=headers or {})


def test_keys_are_decoded(files) -> None:
    body = {"keys": [{"key_ID": KEY_ID, "key": base64.b64encode(b"\x07" * 32).decode(), "key_extension": {"x": 1}}]}
    (key,) = client(files, answer(200, body)).enc_keys("sae-2")
    assert (key.key_id, key.material, key.extension) == (KEY_ID, b"\x07" * 32, {"x": 1})
    assert "\\x07" not in repr(key) and "size_bits=256" in repr(key)


@pytest.mark.parametrize("body, what", [
    (b'{"keys": [', "the body is not JSON"),
    ({"Keys": []}, "no 'keys' array"),
    ({"keys": [{"key_ID": KEY_ID}]}, "keys[0] lacks a key_ID or key string"),
    ({"keys": [{"key_ID": KEY_ID, "key": "not base64!"}]}, "keys[0].key is not standard Base64"),
    ({"keys": [{"key_ID": KEY_ID, "key": "AAAA", "key_extension": []}]}, "keys[0].key_extension is not an object"),
])
def test_a_malformed_200_is_a_protocol_error(files, body, what: str) -> None:
    with pytest.raises(Etsi014ProtocolError) as caught:
        client(files, answer(200, body)).enc_keys("sae-2")
    assert caught.value.what == what and caught.value.status == 200
    assert isinstance(caught.value, Etsi014Error)


def test_a_status_that_is_not_an_object_is_a_protocol_error(files) -> None:
    with pytest.raises(Etsi014ProtocolError):
        client(files, answer(200, [1, 2])).status("sae-2")


def test_a_503_carries_its_retry_after(files) -> None:
    with pytest.raises(Etsi014Error) as caught:
        client(files, answer(503, {"message": "busy"}, {"Retry-After": "3"})).status("sae-2")
    assert (caught.value.status, caught.value.retry_after_s, caught.value.body) == (503, 3.0, {"message": "busy"})
    with pytest.raises(Etsi014Error) as dated:
        client(files, answer(503, {"message": "busy"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})).status("x")
    assert dated.value.retry_after_s is None


def test_the_expected_certificate_name_is_sent_with_every_request(files) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions.get("sni_hostname"))
        return httpx.Response(200, json={"keys": []})

    kme = client(files, handler, server_name="qkd-a.example")
    kme.enc_keys("sae-2", use_get=True)
    kme.dec_keys("sae-2", [KEY_ID])
    assert seen == ["qkd-a.example", "qkd-a.example"]


def test_get_forms_put_parameters_in_the_query(files) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.split(b"?")[0].decode(), dict(request.url.params), request.content))
        return httpx.Response(200, json={"keys": []})

    kme = client(files, handler)
    kme.enc_keys("CONS B", number=2, size_bits=256, use_get=True)
    kme.dec_keys("CONSA", [KEY_ID])
    assert seen[0] == ("GET", "/api/v1/keys/CONS%20B/enc_keys", {"number": "2", "size": "256"}, b"")
    assert seen[1][0] == "POST" and json.loads(seen[1][3]) == {"key_IDs": [{"key_ID": KEY_ID}]}
