"""AES-256-GCM sealing of key material before it reaches the store.

The associated data binds a sealed value to its identity (node, kind, id), so a
ciphertext copied to another key_ID or another node does not unseal.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms.errors import ConfigError, StoreError

KEK_SIZE_BYTES = 32
NONCE_SIZE_BYTES = 12
_FORMAT = b"qkms-seal-v1"


class Sealer:
    """Seals and unseals byte strings under one key-encryption key."""

    def __init__(self, kek: bytes, context: str):
        if len(kek) != KEK_SIZE_BYTES:
            raise ConfigError("kek: must be 32 bytes (AES-256)")
        self._aead = AESGCM(kek)
        self._context = context.encode()

    def _aad(self, identity: str) -> bytes:
        parts = (_FORMAT, self._context, identity.encode())
        return b"".join(len(part).to_bytes(4, "big") + part for part in parts)

    def seal(self, material: bytes, identity: str) -> bytes:
        """Return nonce || ciphertext+tag for ``material`` bound to ``identity``."""
        nonce = os.urandom(NONCE_SIZE_BYTES)
        return nonce + self._aead.encrypt(nonce, material, self._aad(identity))

    def unseal(self, sealed: bytes, identity: str) -> bytes:
        """Inverse of :meth:`seal`; raises StoreError if tampered or misbound."""
        nonce, body = sealed[:NONCE_SIZE_BYTES], sealed[NONCE_SIZE_BYTES:]
        if len(nonce) != NONCE_SIZE_BYTES:
            raise StoreError("sealed value failed authentication")
        try:
            return self._aead.decrypt(nonce, body, self._aad(identity))
        except (InvalidTag, ValueError):
            raise StoreError("sealed value failed authentication") from None


def parse_kek(text: bytes) -> bytes:
    """Accept a KEK as 64 hex characters, Base64 of 32 bytes, or 32 raw bytes."""
    stripped = text.strip()
    for decode in (binascii.unhexlify, lambda t: base64.b64decode(t, validate=True)):
        try:
            kek = decode(stripped)
        except (binascii.Error, ValueError):
            continue
        if len(kek) == KEK_SIZE_BYTES:
            return kek
    if len(text) == KEK_SIZE_BYTES:
        return text
    raise ConfigError("kek: must be 32 bytes given as hex, Base64 or raw bytes")


def load_kek(file: Path | None = None, env: str | None = None) -> bytes:
    """Load the KEK from a file or an environment variable (exactly one)."""
    if file is not None:
        try:
            return parse_kek(Path(file).read_bytes())
        except OSError as exc:
            raise ConfigError(f"kek.file: cannot read ({exc.strerror})") from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"kek.env: environment variable {env} is not set")
        return parse_kek(value.encode())
    raise ConfigError("kek: give either file or env")


def new_kek_hex() -> str:
    """A fresh random KEK encoded as hex, for writing a key file."""
    return os.urandom(KEK_SIZE_BYTES).hex()
