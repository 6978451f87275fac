"""The contract of a Kek (kms.keyring): AES-256-GCM with a 12-byte nonce and a 16-byte
tag, bound to the associated data, StoreError on any mismatch, an 8-byte kek_id, and a
repr without key material. Every implementation runs it: in memory and in an HSM
(SoftHSM2, a token of each test's own)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms.errors import StoreError
from kms.keyring import Kek, SoftwareKek
from tests.support.softhsm import make_softhsm, point_this_process_at

SOFTWARE_KEY = bytes(range(32))


@pytest.fixture(params=["software", "pkcs11"])
def kek(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kek:
    if request.param == "software":
        yield SoftwareKek(SOFTWARE_KEY)
        return
    from kms.hsm import Pkcs11Kek, Pkcs11Token, reopen_all

    hsm = point_this_process_at(make_softhsm(tmp_path), monkeypatch)
    token = Pkcs11Token(hsm.module, hsm.token_label, hsm.pin_env)
    token.generate_key("contract")
    yield Pkcs11Kek(token, "contract")
    reopen_all()


def test_it_round_trips_with_a_16_byte_tag(kek: Kek) -> None:
    nonce = os.urandom(12)
    for plaintext in (b"", b"k" * 32, os.urandom(1000)):
        sealed = kek.encrypt(nonce, plaintext, b"aad")
        assert len(sealed) == len(plaintext) + 16
        assert kek.decrypt(nonce, sealed, b"aad") == plaintext


def test_anything_changed_fails_with_store_error(kek: Kek) -> None:
    nonce = os.urandom(12)
    sealed = kek.encrypt(nonce, b"material", b"aad")
    other_nonce = bytes([nonce[0] ^ 1]) + nonce[1:]
    for args in ((nonce, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"aad"), (nonce, sealed, b"aae"),
                 (other_nonce, sealed, b"aad"), (nonce, sealed[:-1], b"aad"), (nonce, b"", b"aad")):
        with pytest.raises(StoreError, match="failed authentication"):
            kek.decrypt(*args)


def test_it_is_standard_aes_gcm(kek: Kek) -> None:
    """Checked against cryptography's AES-GCM where the key is known (in memory); for a
    key that never leaves the token, a ciphertext's shape and the tag over the AAD."""
    nonce = os.urandom(12)
    sealed = kek.encrypt(nonce, b"material", b"aad")
    if isinstance(kek, SoftwareKek):
        assert sealed == AESGCM(SOFTWARE_KEY).encrypt(nonce, b"material", b"aad")
    assert kek.encrypt(nonce, b"material", b"aad") == sealed  # deterministic for one nonce


def test_its_id_has_8_bytes_and_its_repr_no_key(kek: Kek) -> None:
    assert isinstance(kek.kek_id, bytes) and len(kek.kek_id) == 8
    assert SOFTWARE_KEY.hex() not in repr(kek) and kek.kek_id.hex() in repr(kek)
