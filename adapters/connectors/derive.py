"""Binding a delivered key to one application, one tunnel and one key_ID (HKDF-SHA256).

    OKM = HKDF-SHA256(IKM = the key qkms delivered, salt = none (RFC 5869: HashLen
          zero bytes), info = context, L = length)
    context = b"qkms-connect/1" || field(purpose) || field(application)
              || field(tunnel) || field(key_ID)
    field(s) = len(UTF-8(s)) as 2 bytes big-endian || UTF-8(s)

Length prefixes keep two different contexts from ever encoding to the same bytes. The
same delivered key gives unrelated outputs for another purpose (the installed ``key``,
the agent pair's ``confirm`` value), application, tunnel or key_ID, so a key_ID
announced for one tunnel cannot key another. Vectors: tests/adapters/connectors/test_derive.py.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LABEL = b"qkms-connect/1"
MAX_FIELD_BYTES = 0xFFFF


def context(purpose: str, application: str, tunnel: str, key_id: str) -> bytes:
    """The HKDF info for one derivation."""
    out = bytearray(LABEL)
    for value in (purpose, application, tunnel, key_id):
        encoded = value.encode("utf-8")
        if len(encoded) > MAX_FIELD_BYTES:
            raise ValueError("context field longer than 65535 bytes")
        out += len(encoded).to_bytes(2, "big") + encoded
    return bytes(out)


def derive_key(material: bytes, length: int, purpose: str, application: str, tunnel: str, key_id: str) -> bytes:
    """``length`` bytes bound to (purpose, application, tunnel, key_id) from ``material``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=context(purpose, application, tunnel, key_id)).derive(material)
