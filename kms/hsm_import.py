"""Moving a node's KEKs from ``kek.file`` into an HSM (``qkms kek import-hsm``): every
key of the old software keyring becomes an AES-256 key object in the token, stored,
private, sensitive and non-extractable like the keys qkms generates there, with the
key's software kek_id (kms.keyring.software_kek_id) as its CKA_ID. Values sealed under
the file's KEKs carry that kek_id, so the token unseals them as they are: nothing in
the store changes when the node's config switches to ``kek.pkcs11``.

An imported key has been outside the token (its CKA_ALWAYS_SENSITIVE and
CKA_NEVER_EXTRACTABLE are false), so the import is a bridge: ``qkms kek rotate`` then
re-seals everything under a key generated in the token, after which the old file and
the imported objects can be destroyed (docs/security.md, "KEKs in an HSM").
"""

from __future__ import annotations

from kms.errors import ConfigError
from kms.hsm import LABEL_PATTERN, SETTING, HsmKeyringFile, KeyLabels, Pkcs11Token, kek_restrictions, load_pkcs11
from kms.keyring import KeyringKeys, software_kek_id
from kms.pki.files import write_atomic
from kms.rotation import KEYRING_FILE_MODE

IMPORTED_PREFIX = "qkms-kek-imported"
#: A label is the prefix, a dash and the kek_id in hex (16 characters).
MAX_PREFIX_LENGTH = 64 - 17


def imported_label(prefix: str, key: bytes) -> str:
    """The label of an imported key: ``prefix`` and the key's kek_id, which also names it
    in sealed values, so an operator can tell which object unseals what."""
    return f"{prefix}-{software_kek_id(key).hex()}"


def _check_prefix(prefix: str) -> None:
    if len(prefix) > MAX_PREFIX_LENGTH or not LABEL_PATTERN.match(prefix):
        raise ConfigError(f"--label-prefix: 1 to {MAX_PREFIX_LENGTH} of A-Z a-z 0-9 . _ -")


def import_keyring(keyring: HsmKeyringFile, keys: KeyringKeys, prefix: str = IMPORTED_PREFIX) -> KeyLabels:
    """The keys of a software keyring created in ``keyring``'s token and its HSM keyring
    file written naming them (the current key current, the previous ones previous).

    Nothing is created unless the file is absent and every label and CKA_ID is free in
    the token; a key the token refuses takes the ones created before it away again. The
    file is written last: a crash before it leaves objects that a rerun refuses by
    name (delete them and run it again)."""
    _check_prefix(prefix)
    if keyring.path.exists():
        raise ConfigError(f"{SETTING}.keyring: {keyring.path} exists already (import-hsm writes a new one)")
    values = (keys.current, *keys.previous)
    labels = [imported_label(prefix, key) for key in values]
    if len(set(labels)) != len(labels):
        raise ConfigError("--from-file: names one KEK twice")
    _create(keyring.token, dict(zip(labels, values)))
    imported = KeyLabels(labels[0], tuple(labels[1:]))
    write_atomic(keyring.path, imported.to_text(), KEYRING_FILE_MODE)
    return imported


def _create(token: Pkcs11Token, keys: dict[str, bytes]) -> None:
    """Each key (label → value) created in the token as an AES key object, or none of them."""
    pkcs11 = load_pkcs11()
    attribute = pkcs11.Attribute
    opened = token.opened()
    with opened.lock:
        for label, key in keys.items():
            token.refuse_taken(opened, label, software_kek_id(key))
        created = []
        for label, key in keys.items():
            try:
                created.append(opened.session.create_object({
                    attribute.CLASS: pkcs11.ObjectClass.SECRET_KEY, attribute.KEY_TYPE: pkcs11.KeyType.AES,
                    attribute.VALUE: key, attribute.TOKEN: True, attribute.ID: software_kek_id(key),
                    attribute.LABEL: label, attribute.ENCRYPT: True, attribute.DECRYPT: True,
                    **kek_restrictions(attribute)}))
            except pkcs11.PKCS11Error as exc:
                failure = type(exc).__name__
                for made in created:
                    made.destroy()
                raise ConfigError(f"{SETTING}: the token refused to import key {label!r} ({failure})") from None
