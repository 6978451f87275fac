"""KEKs of a software keyring imported into an HSM (kms/hsm_import.py) on a SoftHSM2
token of each test's own: an imported key seals and unseals exactly like the software
KEK it came from, in both directions, under the same kek_id; its value cannot be read
back; and every refusal is one line naming the setting or file, never key bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kms.errors import ConfigError
from kms.hsm import HsmKeyringFile, KeyLabels, Pkcs11Kek, Pkcs11Token
from kms.hsm_import import import_keyring, imported_label
from kms.keyring import KeyringKeys, software_kek_id
from kms.sealing import Sealer, kek_id_of
from tests.support.softhsm import SoftHsm

KEY_ID = "6f1c0b4e-8d1f-4a55-9d3e-0d4b2c1a9e77"
KEYS = KeyringKeys(bytes(range(32)), (bytes(range(32, 64)), bytes(range(64, 96))))


@pytest.fixture
def hsm_keyring(softhsm: SoftHsm, tmp_path: Path) -> HsmKeyringFile:
    return HsmKeyringFile(tmp_path / "hsm-keyring", Pkcs11Token(softhsm.module, softhsm.token_label, softhsm.pin_env))


def test_imported_keys_seal_and_unseal_like_the_software_keys(hsm_keyring: HsmKeyringFile) -> None:
    software = KEYS.keyring()
    sealed_in_memory = [Sealer(KeyringKeys(key).keyring(), "KME-1").seal(b"material %d" % n, KEY_ID)
                        for n, key in enumerate((KEYS.current, *KEYS.previous))]
    labels = import_keyring(hsm_keyring, KEYS)
    assert labels == KeyLabels(imported_label("qkms-kek-imported", KEYS.current),
                               tuple(imported_label("qkms-kek-imported", key) for key in KEYS.previous))
    hsm = hsm_keyring.keyring_of(hsm_keyring.labels())
    assert [kek.kek_id for kek in hsm.all()] == [kek.kek_id for kek in software.all()] \
        == [software_kek_id(key) for key in (KEYS.current, *KEYS.previous)]
    assert all(isinstance(kek, Pkcs11Kek) for kek in hsm.all())
    for n, sealed in enumerate(sealed_in_memory):
        assert Sealer(hsm, "KME-1").unseal(sealed, KEY_ID) == b"material %d" % n
    sealed_in_token = Sealer(hsm, "KME-1").seal(b"sealed in the token", KEY_ID)
    assert kek_id_of(sealed_in_token) == software_kek_id(KEYS.current)
    assert Sealer(software, "KME-1").unseal(sealed_in_token, KEY_ID) == b"sealed in the token"
    nonce = os.urandom(12)
    assert hsm.current.encrypt(nonce, b"m", b"aad") == software.current.encrypt(nonce, b"m", b"aad")
    assert hsm_keyring.path.stat().st_mode & 0o777 == 0o600


def test_an_imported_key_is_sensitive_and_not_extractable(hsm_keyring: HsmKeyringFile) -> None:
    import pkcs11

    labels = import_keyring(hsm_keyring, KeyringKeys(KEYS.current), "old")
    assert labels == KeyLabels(f"old-{software_kek_id(KEYS.current).hex()}")
    token = hsm_keyring.token
    key = token.key(token.opened(), labels.current)
    assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
    assert key[pkcs11.Attribute.PRIVATE] and key[pkcs11.Attribute.TOKEN]
    assert not any(key[attribute] for attribute in (pkcs11.Attribute.WRAP, pkcs11.Attribute.UNWRAP,
                                                    pkcs11.Attribute.SIGN, pkcs11.Attribute.DERIVE))
    assert bytes(key[pkcs11.Attribute.ID]) == software_kek_id(KEYS.current)
    with pytest.raises(pkcs11.AttributeSensitive):
        key[pkcs11.Attribute.VALUE]


def refusal(hsm_keyring: HsmKeyringFile, keys: KeyringKeys = KEYS, prefix: str = "qkms-kek-imported") -> str:
    with pytest.raises(ConfigError) as raised:
        import_keyring(hsm_keyring, keys, prefix)
    message = raised.value.message
    assert "\n" not in message
    assert not any(key.hex() in message or repr(key) in message for key in (KEYS.current, *KEYS.previous))
    return message


def test_a_second_import_is_refused_and_changes_nothing(hsm_keyring: HsmKeyringFile) -> None:
    import_keyring(hsm_keyring, KEYS)
    before = hsm_keyring.path.read_bytes()
    assert refusal(hsm_keyring) == f"kek.pkcs11.keyring: {hsm_keyring.path} exists already (import-hsm writes a new one)"
    hsm_keyring.path.unlink()
    current_id = software_kek_id(KEYS.current)
    assert refusal(hsm_keyring) \
        == f"kek.pkcs11.keyring: the token already holds a key labelled 'qkms-kek-imported-{current_id.hex()}'"
    assert refusal(hsm_keyring, prefix="other") == (f"kek.pkcs11: the token already holds a key with CKA_ID "
                                                    f"{current_id.hex()} (labelled 'qkms-kek-imported-{current_id.hex()}')")
    assert not hsm_keyring.path.exists()
    hsm_keyring.path.write_bytes(before)
    assert hsm_keyring.labels().current == f"qkms-kek-imported-{current_id.hex()}"


def test_nothing_is_created_unless_every_key_is_free(hsm_keyring: HsmKeyringFile) -> None:
    import_keyring(HsmKeyringFile(hsm_keyring.path.with_name("first"), hsm_keyring.token),
                   KeyringKeys(KEYS.previous[1]), "taken")
    assert refusal(hsm_keyring).startswith("kek.pkcs11: the token already holds a key with CKA_ID")
    assert not hsm_keyring.path.exists()
    token = hsm_keyring.token
    with pytest.raises(ConfigError, match="no AES key labelled"):
        token.key(token.opened(), imported_label("qkms-kek-imported", KEYS.current))


def test_a_label_taken_by_another_object_is_refused(hsm_keyring: HsmKeyringFile) -> None:
    label = imported_label("qkms-kek-imported", KEYS.previous[0])
    hsm_keyring.token.generate_key(label)
    assert refusal(hsm_keyring) == f"kek.pkcs11.keyring: the token already holds a key labelled {label!r}"


@pytest.mark.parametrize(("prefix", "message"), [
    ("bad/prefix", "--label-prefix: 1 to 47 of A-Z a-z 0-9 . _ -"),
    ("p" * 48, "--label-prefix: 1 to 47 of A-Z a-z 0-9 . _ -"),
])
def test_a_bad_prefix_is_refused(hsm_keyring: HsmKeyringFile, prefix: str, message: str) -> None:
    assert refusal(hsm_keyring, prefix=prefix) == message


def test_a_keyring_naming_one_kek_twice_is_refused(hsm_keyring: HsmKeyringFile) -> None:
    assert refusal(hsm_keyring, KeyringKeys(KEYS.current, (KEYS.current,))) == "--from-file: names one KEK twice"


class RefusingSecondObject:
    """A session whose token refuses the second object created, as an HSM may."""

    def __init__(self, session):
        self.session, self.created = session, 0

    def __getattr__(self, name: str):
        return getattr(self.session, name)

    def create_object(self, attributes: dict):
        import pkcs11

        self.created += 1
        if self.created == 2:
            raise pkcs11.TemplateInconsistent()
        return self.session.create_object(attributes)


def test_a_key_the_token_refuses_takes_the_ones_before_it_away(hsm_keyring: HsmKeyringFile) -> None:
    opened = hsm_keyring.token.opened()
    opened.session = RefusingSecondObject(opened.session)
    refused = imported_label("qkms-kek-imported", KEYS.previous[0])
    assert refusal(hsm_keyring) == f"kek.pkcs11: the token refused to import key {refused!r} (TemplateInconsistent)"
    assert not hsm_keyring.path.exists()
    opened.session = opened.session.session
    with pytest.raises(ConfigError, match="no AES key labelled"):
        hsm_keyring.token.key(opened, imported_label("qkms-kek-imported", KEYS.current))
    assert import_keyring(hsm_keyring, KEYS).current == imported_label("qkms-kek-imported", KEYS.current)
