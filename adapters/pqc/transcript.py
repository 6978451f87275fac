"""The messages of one ML-KEM link exchange, their signed transcript and the block it yields.

One round trip per block (docs/pqc.md, "Protocol"):

    offer  (initiator -> responder): link, both KME_IDs, KEM and signature algorithms,
           exchange_id, sequence, block size, a fresh ML-KEM encapsulation key,
           the signer's key fingerprint; ML-DSA signature over all of it.
    answer (responder -> initiator): link, exchange_id, sequence, SHA-256 of the whole
           signed offer, the ML-KEM ciphertext, the signer's key fingerprint; ML-DSA
           signature over all of it (so over the whole transcript).

What is signed is a domain label and the message's fields as canonical JSON (sorted
keys, no spaces, ASCII): the fields are strings and integers only, so both ends encode
them alike. The block is HKDF-SHA-512 of the ML-KEM shared secret, salted with the
hash of the transcript and bound to the link and the sequence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kms.errors import BadRequest

VERSION = 1
OFFER, ANSWER = "ml-kem-offer", "ml-kem-answer"
#: HKDF-SHA-512 yields at most 255 * 64 bytes.
MAX_BLOCK_BYTES = 255 * 64
BLOCK_KDF = "hkdf-sha512"
OFFER_FIELDS = {"type": str, "version": int, "link": str, "initiator": str, "responder": str, "kem": str,
                "signature_algorithm": str, "exchange_id": str, "sequence": int, "block_bytes": int,
                "encapsulation_key": str, "signer_key_sha256": str, "signature": str}
ANSWER_FIELDS = {"type": str, "version": int, "link": str, "exchange_id": str, "sequence": int,
                 "offer_sha256": str, "ciphertext": str, "signer_key_sha256": str, "signature": str}


def signed_bytes(message: dict[str, Any]) -> bytes:
    """What the sender of ``message`` signs: its type as a label, then every field but the
    signature as canonical JSON."""
    fields = {k: v for k, v in message.items() if k != "signature"}
    return f"qkms {message['type']} v{VERSION}\n".encode() + json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def offer_digest(offer: dict[str, Any]) -> str:
    """SHA-256 (hex) of a whole signed offer, as the answer quotes it."""
    return hashlib.sha256(signed_bytes(offer) + b64decode(offer["signature"], "signature")).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"ml-kem message: {field} is not Base64") from None


def check_shape(message: Any, fields: dict[str, type], kind: str) -> dict[str, Any]:
    """BadRequest unless ``message`` is a ``kind`` message with exactly ``fields``."""
    if not isinstance(message, dict) or set(message) != set(fields):
        raise BadRequest(f"ml-kem message: expected the fields of an {kind}")
    for name, expected in fields.items():
        value = message[name]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise BadRequest(f"ml-kem message: {name} must be a {expected.__name__}")
    if message["type"] != kind or message["version"] != VERSION:
        raise BadRequest(f"ml-kem message: expected an {kind} of version {VERSION}")
    return message


@dataclass(frozen=True)
class Transcript:
    """Both signed messages of one exchange."""

    offer: dict[str, Any]
    answer: dict[str, Any]

    def digest(self) -> bytes:
        return hashlib.sha512(signed_bytes(self.offer) + b64decode(self.offer["signature"], "signature")
                              + signed_bytes(self.answer)).digest()


def derive_block(shared_secret: bytes, transcript: Transcript) -> bytes:
    """The block both ends derive: HKDF-SHA-512(shared secret, salt = transcript hash,
    info = link and sequence)."""
    offer = transcript.offer
    info = f"qkms ml-kem link block v{VERSION}|{offer['link']}|{offer['sequence']}".encode()
    return HKDF(hashes.SHA512(), offer["block_bytes"], salt=transcript.digest(), info=info).derive(shared_secret)
