"""AES-256-GCM sealing of key material before it reaches the store.

The associated data binds a sealed value to its identity (node, kind, id), so a
ciphertext copied to another key_ID or another node does not unseal. A sealed value
names the KEK that sealed it, so a node can hold several at once (kms.keyring): the
current KEK seals, every KEK of the keyring unseals.

Formats:
  v2 (written):  "QK\\x02" || kek_id (8) || nonce (12) || ciphertext+tag
                 AAD = the length-prefixed parts ("qkms-seal-v2", kek_id, context, identity)
  v1 (read):     nonce (12) || ciphertext+tag, AAD ("qkms-seal-v1", context, identity),
                 under any KEK of the keyring (stores written before keyrings existed)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from kms.errors import ConfigError, StoreError
from kms.keyring import (KEK_ID_BYTES, KEK_SIZE_BYTES, Kek, Keyring, KeyringFile, KeyringSource, SoftwareKek,
                         StaticKeyring, parse_kek, parse_keyring)

if TYPE_CHECKING:
    from kms.config import Pkcs11KekConfig

__all__ = ["KEK_SIZE_BYTES", "NONCE_SIZE_BYTES", "Sealer", "keyring_source", "load_kek", "new_kek_hex", "parse_kek"]

NONCE_SIZE_BYTES = 12
TAG_SIZE_BYTES = 16
_V1 = b"qkms-seal-v1"
_V2 = b"qkms-seal-v2"
_V2_MAGIC = b"QK\x02"
_V2_HEADER = len(_V2_MAGIC) + KEK_ID_BYTES + NONCE_SIZE_BYTES


def _aad(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


class Sealer:
    """Seals and unseals byte strings under a node's keyring (or one KEK)."""

    def __init__(self, keys: bytes | Keyring | KeyringSource, context: str):
        if isinstance(keys, bytes):
            keys = Keyring(SoftwareKek(keys))
        self._source = StaticKeyring(keys) if isinstance(keys, Keyring) else keys
        self._context = context.encode()

    @property
    def current_kek_id(self) -> bytes:
        return self._source.keyring().current.kek_id

    def seal(self, material: bytes, identity: str) -> bytes:
        """The v2 sealed value of ``material`` bound to ``identity``, under the current KEK."""
        kek = self._source.keyring().current
        nonce = os.urandom(NONCE_SIZE_BYTES)
        aad = _aad(_V2, kek.kek_id, self._context, identity.encode())
        return _V2_MAGIC + kek.kek_id + nonce + kek.encrypt(nonce, material, aad)

    def unseal(self, sealed: bytes, identity: str) -> bytes:
        """Inverse of :meth:`seal` (and of the v1 format); StoreError if tampered,
        misbound, or sealed under a KEK the keyring does not hold."""
        keyring = self._source.keyring()
        kek = keyring.get(kek_id_of(sealed) or b"")
        if kek is not None:
            try:
                return self._unseal_v2(kek, sealed, identity)
            except StoreError:
                pass  # a v1 value can start like a v2 one (3 random bytes): try v1 too
        for kek in keyring.all():
            try:
                return self._unseal_v1(kek, sealed, identity)
            except StoreError:
                continue
        raise StoreError("sealed value failed authentication")

    def _unseal_v2(self, kek: Kek, sealed: bytes, identity: str) -> bytes:
        nonce = sealed[len(_V2_MAGIC) + KEK_ID_BYTES:_V2_HEADER]
        aad = _aad(_V2, kek.kek_id, self._context, identity.encode())
        return kek.decrypt(nonce, sealed[_V2_HEADER:], aad)

    def _unseal_v1(self, kek: Kek, sealed: bytes, identity: str) -> bytes:
        nonce, body = sealed[:NONCE_SIZE_BYTES], sealed[NONCE_SIZE_BYTES:]
        if len(nonce) != NONCE_SIZE_BYTES or len(body) < TAG_SIZE_BYTES:
            raise StoreError("sealed value failed authentication")
        return kek.decrypt(nonce, body, _aad(_V1, self._context, identity.encode()))

    def is_current(self, sealed: bytes) -> bool:
        """True if ``sealed`` is a v2 value that names the current KEK."""
        return kek_id_of(sealed) == self.current_kek_id

    def reseal(self, sealed: bytes, identity: str) -> bytes | None:
        """``sealed`` sealed anew under the current KEK, or None if it already is."""
        if self.is_current(sealed):
            return None
        return self.seal(self.unseal(sealed, identity), identity)


def kek_id_of(sealed: bytes) -> bytes | None:
    """The KEK identifier a v2 sealed value names (None for anything else)."""
    if len(sealed) < _V2_HEADER + TAG_SIZE_BYTES or not sealed.startswith(_V2_MAGIC):
        return None
    return sealed[len(_V2_MAGIC):len(_V2_MAGIC) + KEK_ID_BYTES]


def keyring_source(file: Path | None = None, env: str | None = None,
                   pkcs11: Pkcs11KekConfig | None = None) -> KeyringSource:
    """A node's keyring from its ``kek`` settings: a file (re-read when it changes), an
    environment variable (one KEK or a keyring, fixed for the process's life) or keys in
    an HSM (``pkcs11``: its keyring file is re-read too)."""
    if file is not None:
        return KeyringFile(Path(file))
    if pkcs11 is not None:
        from kms.hsm import HsmKeyringFile  # kms.hsm builds on kms.rotation, which builds on this module

        return HsmKeyringFile.from_config(pkcs11).source()
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"kek.env: environment variable {env} is not set")
        return StaticKeyring(parse_keyring(value.encode(), "kek.env").keyring())
    raise ConfigError("kek: give one of file, env or pkcs11")


def load_kek(file: Path | None = None, env: str | None = None) -> bytes:
    """The current KEK's raw bytes from a file or an environment variable (exactly one)."""
    if file is not None:
        try:
            return parse_keyring(Path(file).read_bytes(), "kek.file").current
        except OSError as exc:
            raise ConfigError(f"kek.file: cannot read ({exc.strerror})") from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"kek.env: environment variable {env} is not set")
        return parse_keyring(value.encode(), "kek.env").current
    raise ConfigError("kek: give either file or env")


def new_kek_hex() -> str:
    """A fresh random KEK encoded as hex, for writing a key file."""
    return os.urandom(KEK_SIZE_BYTES).hex()
