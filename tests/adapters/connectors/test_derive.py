"""HKDF-SHA256 key binding (adapters/connectors/derive.py) against published and
independently computed vectors."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from adapters.connectors.derive import context, derive_key

# RFC 5869 appendix A, test cases 1 and 3 (SHA-256): the primitive derive_key uses.
RFC5869 = [
    pytest.param("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
                 "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
                 id="RFC5869-A.1"),
    pytest.param("0b" * 22, None, "", 42,
                 "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
                 id="RFC5869-A.3"),
]

# Our context encoding. Expected outputs computed with a second implementation,
# OpenSSL 3.0's HKDF: `openssl kdf -keylen L -kdfopt digest:SHA256
# -kdfopt hexkey:<32 bytes of 0xaa> -kdfopt hexinfo:<context hex> HKDF` (no salt).
IKM = bytes([0xAA]) * 32
OWN = [
    ("key", "wireguard", "wg-site-a-b", "3f0c2a1e-7b55-4c1d-9d0e-5c7d1e2b8a90", 32,
     "716b6d732d636f6e6e6563742f3100036b65790009776972656775617264000b77672d736974652d612d62"
     "002433663063326131652d376235352d346331642d396430652d356337643165326238613930",
     "116cb3e8d652530164733f7d0978d33935bada8cd2b80f8ce323769ce924e983"),
    ("confirm", "wireguard", "wg-site-a-b", "3f0c2a1e-7b55-4c1d-9d0e-5c7d1e2b8a90", 16,
     "716b6d732d636f6e6e6563742f310007636f6e6669726d0009776972656775617264000b77672d736974652d612d62"
     "002433663063326131652d376235352d346331642d396430652d356337643165326238613930",
     "ce3f230001a9068d84bf518c147f02a3"),
    ("key", "tls-psk", "web", "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b", 32,
     "716b6d732d636f6e6e6563742f3100036b65790007746c732d70736b0003776562"
     "002430623866336334652d326431612d346535662d386139622d376336643565346633613262",
     "462a8edc226e2fd197587ab10679ed059ee47e53597a9e70c95b7eea0639cc9c"),
    ("key", "strongswan", "ike-hq", "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b", 64,
     "716b6d732d636f6e6e6563742f3100036b6579000a7374726f6e677377616e0006696b652d6871"
     "002430623866336334652d326431612d346535662d386139622d376336643565346633613262",
     "9e2da5b45c156de5d0bb91fa8dfde93aef8662c634e2cc831351ba85ae45729a"
     "3d04973f66c0d128068fad0e5b038b7433f6aae32c814308d518dd1001d723a7"),
]


def stdlib_hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 from hmac alone: the independent implementation."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


@pytest.mark.parametrize("ikm, salt, info, length, okm", RFC5869)
def test_the_primitive_matches_rfc5869(ikm, salt, info, length, okm):
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=bytes.fromhex(salt) if salt else None,
                info=bytes.fromhex(info))
    assert hkdf.derive(bytes.fromhex(ikm)).hex() == okm
    assert stdlib_hkdf(bytes.fromhex(ikm), bytes.fromhex(salt or ""), bytes.fromhex(info), length).hex() == okm


@pytest.mark.parametrize("purpose, application, tunnel, key_id, length, info, okm", OWN)
def test_the_context_encoding_matches_openssl(purpose, application, tunnel, key_id, length, info, okm):
    assert context(purpose, application, tunnel, key_id).hex() == info
    assert derive_key(IKM, length, purpose, application, tunnel, key_id).hex() == okm


@given(st.binary(min_size=16, max_size=64), st.text(max_size=20), st.text(max_size=20), st.integers(1, 96))
def test_derive_key_agrees_with_the_stdlib_implementation(material, tunnel, key_id, length):
    expected = stdlib_hkdf(material, b"", context("key", "file", tunnel, key_id), length)
    assert derive_key(material, length, "key", "file", tunnel, key_id) == expected


def test_every_field_changes_the_output():
    base = ("key", "wireguard", "t", "k")
    outputs = {derive_key(IKM, 32, *fields) for fields in
               [base, ("confirm", *base[1:]), ("key", "strongswan", "t", "k"), ("key", "wireguard", "u", "k"),
                ("key", "wireguard", "t", "l")]}
    assert len(outputs) == 5


def test_length_prefixes_keep_contexts_apart():
    assert context("key", "ab", "c", "d") != context("key", "a", "bc", "d")
