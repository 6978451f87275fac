"""kms.sealing: AES-256-GCM bound to a key's identity and its node (DESIGN.md sections 5, 8)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from kms.errors import ConfigError, StoreError
from kms.sealing import KEK_SIZE_BYTES, NONCE_SIZE_BYTES, Sealer, load_kek, new_kek_hex, parse_kek

#: Header of the v2 format: "QK\x02", the KEK's 8-byte id, the nonce.
V2_HEADER = 3 + 8 + NONCE_SIZE_BYTES

MATERIAL = bytes(range(32))
KEY_ID = "6f1c0b4e-8d1f-4a55-9d3e-0d4b2c1a9e77"


@pytest.fixture
def sealer(kek: bytes) -> Sealer:
    return Sealer(kek, "KME-1")


# --- seal / unseal ------------------------------------------------------------------


@pytest.mark.parametrize("material", [b"", b"\x00", MATERIAL, os.urandom(8192)], ids=["empty", "1B", "32B", "8KiB"])
def test_round_trip(sealer: Sealer, material: bytes) -> None:
    sealed = sealer.seal(material, KEY_ID)
    assert sealer.unseal(sealed, KEY_ID) == material


def test_sealed_value_hides_the_material(sealer: Sealer) -> None:
    sealed = sealer.seal(MATERIAL, KEY_ID)
    assert MATERIAL not in sealed
    assert len(sealed) == V2_HEADER + len(MATERIAL) + 16


def test_another_sealer_with_the_same_kek_and_context_unseals(kek: bytes, sealer: Sealer) -> None:
    assert Sealer(kek, "KME-1").unseal(sealer.seal(MATERIAL, KEY_ID), KEY_ID) == MATERIAL


def test_unsealing_under_another_identity_fails(sealer: Sealer) -> None:
    sealed = sealer.seal(MATERIAL, KEY_ID)
    with pytest.raises(StoreError):
        sealer.unseal(sealed, KEY_ID[:-1] + "8")


def test_unsealing_on_another_node_fails(kek: bytes, sealer: Sealer) -> None:
    sealed = sealer.seal(MATERIAL, KEY_ID)
    with pytest.raises(StoreError):
        Sealer(kek, "KME-2").unseal(sealed, KEY_ID)


def test_unsealing_under_another_kek_fails(sealer: Sealer) -> None:
    sealed = sealer.seal(MATERIAL, KEY_ID)
    with pytest.raises(StoreError):
        Sealer(os.urandom(KEK_SIZE_BYTES), "KME-1").unseal(sealed, KEY_ID)


def test_context_and_identity_cannot_be_shifted_into_each_other(kek: bytes) -> None:
    """A sealed value binds exactly one (context, identity) pair, whatever the characters."""
    sealed = Sealer(kek, "KME-1|a").seal(MATERIAL, "b")
    with pytest.raises(StoreError):
        Sealer(kek, "KME-1").unseal(sealed, "a|b")


def test_tampering_with_any_byte_fails(sealer: Sealer) -> None:
    sealed = sealer.seal(MATERIAL, KEY_ID)
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(StoreError):
            sealer.unseal(bytes(tampered), KEY_ID)


def test_appended_bytes_fail(sealer: Sealer) -> None:
    with pytest.raises(StoreError):
        sealer.unseal(sealer.seal(MATERIAL, KEY_ID) + b"\x00", KEY_ID)


@pytest.mark.parametrize("keep", [V2_HEADER + 15, V2_HEADER + 1, V2_HEADER])
def test_truncation_after_the_nonce_fails(sealer: Sealer, keep: int) -> None:
    with pytest.raises(StoreError):
        sealer.unseal(sealer.seal(MATERIAL, KEY_ID)[:keep], KEY_ID)


@pytest.mark.parametrize("keep", [0, 1, 7, 3 + 8 + 5])
def test_truncation_inside_the_nonce_fails_with_store_error(sealer: Sealer, keep: int) -> None:
    with pytest.raises(StoreError):
        sealer.unseal(sealer.seal(MATERIAL, KEY_ID)[:keep], KEY_ID)


def test_nonces_are_unique(sealer: Sealer) -> None:
    nonces = {sealer.seal(MATERIAL, KEY_ID)[11:V2_HEADER] for _ in range(2000)}
    assert len(nonces) == 2000


def test_sealing_the_same_material_twice_gives_different_ciphertexts(sealer: Sealer) -> None:
    assert sealer.seal(MATERIAL, KEY_ID) != sealer.seal(MATERIAL, KEY_ID)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_sealer_refuses_a_kek_that_is_not_256_bits(size: int) -> None:
    with pytest.raises(ConfigError, match=r"^kek: "):
        Sealer(os.urandom(size), "KME-1")


# --- parse_kek ------------------------------------------------------------------------

KEK = bytes.fromhex("8c2f" * 16)


@pytest.mark.parametrize("text", [
    KEK.hex().encode(),
    KEK.hex().upper().encode(),
    KEK.hex().encode() + b"\n",
    b"  " + KEK.hex().encode() + b"\r\n",
    base64.b64encode(KEK),
    base64.b64encode(KEK) + b"\n",
    KEK,
], ids=["hex", "HEX", "hex-newline", "hex-padded", "base64", "base64-newline", "raw"])
def test_parse_kek_accepts_hex_base64_and_raw(text: bytes) -> None:
    assert parse_kek(text) == KEK


def test_parse_kek_takes_32_raw_bytes_as_they_are_even_with_whitespace_bytes() -> None:
    raw = b"\n" + os.urandom(30) + b" "
    assert parse_kek(raw) == raw


def test_new_kek_hex_parses() -> None:
    text = new_kek_hex()
    assert len(parse_kek(text.encode())) == KEK_SIZE_BYTES
    assert new_kek_hex() != text


SECRETISH = bytes.fromhex("d3adb33f" * 8)


@pytest.mark.parametrize("text", [
    b"",
    b"\n",
    SECRETISH[:31],
    SECRETISH + b"\x00",
    SECRETISH.hex()[:-2].encode(),
    SECRETISH.hex().encode() + b"00",
    SECRETISH.hex()[:-1].encode() + b"g",
    base64.b64encode(SECRETISH[:16]),
    base64.b64encode(SECRETISH + b"\x01"),
    base64.b64encode(SECRETISH)[:-1] + b"!",
    b"z" * 64,
], ids=["empty", "newline", "raw31", "raw33", "hex31", "hex33", "hex-bad-digit", "b64-16",
        "b64-33", "b64-bad-char", "z64"])
def test_parse_kek_rejects_everything_else_without_echoing_it(text: bytes) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_kek(text)
    shown = " ".join((str(caught.value), repr(caught.value), caught.value.message, repr(caught.value.details)))
    assert caught.value.message.startswith("kek: ")
    for form in (text.decode("latin-1").strip(), text.hex(), SECRETISH.hex()[:16], "d3adb33f", "062zP9Otsz"):
        if len(form) >= 6:
            assert form not in shown
    assert caught.value.__cause__ is None and caught.value.__context__ is None


# --- load_kek -------------------------------------------------------------------------


def test_load_kek_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "kek.hex"
    path.write_text(KEK.hex() + "\n")
    assert load_kek(file=path) == KEK


def test_load_kek_from_a_raw_file(tmp_path: Path) -> None:
    path = tmp_path / "kek.bin"
    path.write_bytes(KEK)
    assert load_kek(file=str(path)) == KEK


def test_load_kek_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKMS_TEST_KEK", base64.b64encode(KEK).decode())
    assert load_kek(env="QKMS_TEST_KEK") == KEK


def test_load_kek_reads_the_file_when_given_only_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kek.hex"
    path.write_text(KEK.hex())
    monkeypatch.setenv("QKMS_TEST_KEK", "not a key")
    assert load_kek(file=path, env=None) == KEK


def test_load_kek_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^kek\.file: cannot read"):
        load_kek(file=tmp_path / "absent")


def test_load_kek_bad_file_content_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "kek.hex"
    path.write_text(SECRETISH.hex()[:-2])
    with pytest.raises(ConfigError) as caught:
        load_kek(file=path)
    assert SECRETISH.hex()[:16] not in str(caught.value)


def test_load_kek_unset_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QKMS_TEST_KEK_ABSENT", raising=False)
    with pytest.raises(ConfigError, match=r"^kek\.env: .*QKMS_TEST_KEK_ABSENT"):
        load_kek(env="QKMS_TEST_KEK_ABSENT")


def test_load_kek_bad_variable_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QKMS_TEST_KEK", SECRETISH.hex()[:-2])
    with pytest.raises(ConfigError) as caught:
        load_kek(env="QKMS_TEST_KEK")
    assert SECRETISH.hex()[:16] not in str(caught.value)


def test_load_kek_needs_a_source() -> None:
    with pytest.raises(ConfigError, match=r"^kek: "):
        load_kek()
