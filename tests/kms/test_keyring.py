"""Keyrings (kms.keyring) and what the sealer does with them: v2 values name their KEK,
the current KEK seals and every KEK of the keyring unseals, values of the v1 format
(stores written before keyrings) stay readable, and a keyring file is re-read when it
changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kms.errors import ConfigError, StoreError
from kms.keyring import Keyring, KeyringFile, KeyringKeys, SoftwareKek, parse_keyring, software_kek_id
from kms.pki.files import write_atomic
from kms import sealing
from kms.sealing import Sealer, kek_id_of, keyring_source, load_kek

KEY_ID = "6f1c0b4e-8d1f-4a55-9d3e-0d4b2c1a9e77"
#: A value sealed by kms/sealing.py before keyrings (v1 format, main at 17c82da) with
#: KEK bytes(range(32)), context "KME-1" and identity KEY_ID.
V1_VECTOR = bytes.fromhex("39f7c15a2e8163466746fa26231e292b71e039d837c8941e38e496fff1de58f2851b820f68a980c7d1"
                          "a0a62e054d8c7854528216d2c4d81cfbaae4c1")
V1_MATERIAL = b"qkms v1 test vector material 32B"
OLD, NEW = bytes(range(32)), bytes(range(32, 64))


def test_v1_values_from_before_keyrings_stay_readable() -> None:
    assert Sealer(OLD, "KME-1").unseal(V1_VECTOR, KEY_ID) == V1_MATERIAL
    rotated = Sealer(Keyring(SoftwareKek(NEW), (SoftwareKek(OLD),)), "KME-1")
    assert rotated.unseal(V1_VECTOR, KEY_ID) == V1_MATERIAL
    with pytest.raises(StoreError):
        Sealer(NEW, "KME-1").unseal(V1_VECTOR, KEY_ID)
    with pytest.raises(StoreError):
        Sealer(OLD, "KME-2").unseal(V1_VECTOR, KEY_ID)


def test_a_v2_value_names_its_kek_and_any_keyring_holding_it_unseals() -> None:
    sealed = Sealer(OLD, "KME-1").seal(b"material", KEY_ID)
    assert sealed[:3] == b"QK\x02" and kek_id_of(sealed) == software_kek_id(OLD)
    assert Sealer(Keyring(SoftwareKek(NEW), (SoftwareKek(OLD),)), "KME-1").unseal(sealed, KEY_ID) == b"material"
    with pytest.raises(StoreError):
        Sealer(NEW, "KME-1").unseal(sealed, KEY_ID)


def test_the_kek_id_is_bound_into_the_associated_data() -> None:
    """Relabelling a value with another KEK's id does not make it unseal."""
    both = Sealer(Keyring(SoftwareKek(NEW), (SoftwareKek(OLD),)), "KME-1")
    sealed = Sealer(OLD, "KME-1").seal(b"material", KEY_ID)
    relabelled = sealed[:3] + software_kek_id(NEW) + sealed[11:]
    with pytest.raises(StoreError):
        both.unseal(relabelled, KEY_ID)


def test_reseal_moves_a_value_to_the_current_kek_once() -> None:
    old_sealed = Sealer(OLD, "KME-1").seal(b"material", KEY_ID)
    both = Sealer(Keyring(SoftwareKek(NEW), (SoftwareKek(OLD),)), "KME-1")
    assert not both.is_current(old_sealed) and not both.is_current(V1_VECTOR)
    resealed = both.reseal(old_sealed, KEY_ID)
    assert both.is_current(resealed) and both.reseal(resealed, KEY_ID) is None
    assert Sealer(NEW, "KME-1").unseal(resealed, KEY_ID) == b"material"
    assert Sealer(NEW, "KME-1").unseal(both.reseal(V1_VECTOR, KEY_ID), KEY_ID) == V1_MATERIAL


def test_a_v1_value_that_happens_to_start_like_v2_still_unseals() -> None:
    """v1 values start with a random nonce; one in 2^24 starts with the v2 magic (and
    one in 2^88 also with the current KEK's id, as this one is made to)."""
    sealer = Sealer(OLD, "KME-1")
    nonce = b"QK\x02" + sealer.current_kek_id + b"\x00"
    lookalike = nonce + SoftwareKek(OLD).encrypt(nonce, b"m", sealing._aad(sealing._V1, b"KME-1", KEY_ID.encode()))
    assert kek_id_of(lookalike + bytes(16)) == sealer.current_kek_id
    assert sealer.unseal(lookalike, KEY_ID) == b"m"


# --- keyring files --------------------------------------------------------------------------


def test_a_keyring_file_round_trips_and_a_single_kek_is_a_keyring_of_one(tmp_path: Path) -> None:
    keys = KeyringKeys(NEW, (OLD, bytes(32)))
    assert parse_keyring(keys.to_text()) == keys
    assert parse_keyring(OLD.hex().encode() + b"\n") == KeyringKeys(OLD)
    assert OLD.hex() not in repr(keys) and NEW.hex() not in repr(keys)
    (tmp_path / "kek").write_bytes(keys.to_text())
    assert load_kek(file=tmp_path / "kek") == NEW


@pytest.mark.parametrize(("text", "message"), [
    ("qkms-keyring-v1\nprevious " + "00" * 32, "kek.file: keyring names no current KEK"),
    ("qkms-keyring-v1\ncurrent " + "00" * 32 + "\ncurrent " + "11" * 32,
     "kek.file: keyring names more than one current KEK"),
    ("qkms-keyring-v1\n# old\n\ncurrent " + "00" * 31,
     "kek.file: keyring line 4: must be 32 bytes given as hex, Base64 or raw bytes"),
    ("qkms-keyring-v1\nnext " + "00" * 32, "kek.file: keyring line 2: expected 'current HEX' or 'previous HEX'"),
])
def test_malformed_keyrings_are_refused_without_echoing_them(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_keyring(text.encode(), "kek.file")
    assert error.value.message == message
    assert "00" * 16 not in error.value.message


def test_a_keyring_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "kek.hex"
    write_atomic(path, OLD.hex().encode(), 0o600)
    sealer = Sealer(KeyringFile(path), "KME-1")
    before = sealer.seal(b"m", KEY_ID)
    write_atomic(path, KeyringKeys(NEW, (OLD,)).to_text(), 0o600)
    after = sealer.seal(b"m", KEY_ID)
    assert kek_id_of(before) == software_kek_id(OLD) and kek_id_of(after) == software_kek_id(NEW)
    assert sealer.unseal(before, KEY_ID) == sealer.unseal(after, KEY_ID) == b"m"
    write_atomic(path, b"not a keyring", 0o600)  # a bad edit keeps the keyring in use
    assert kek_id_of(sealer.seal(b"m", KEY_ID)) == software_kek_id(NEW)


def test_keyring_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKMS_TEST_KEYRING", KeyringKeys(NEW, (OLD,)).to_text().decode())
    sealer = Sealer(keyring_source(env="QKMS_TEST_KEYRING"), "KME-1")
    assert sealer.current_kek_id == software_kek_id(NEW)
    assert sealer.unseal(V1_VECTOR, KEY_ID) == V1_MATERIAL
