"""ETSI TS 103 744 CatKDF, the concatenate hybrid key combiner, and how qkms uses it.

The standard (section 8.2, "Concatenate hybrid key agreement scheme") derives

    secret      = psk || k_1 || ... || k_n
    f_context   = f(context, MA, MB)
    key_material = KDF(secret, label, f_context, length)

with the concatenate-and-hash context formatting function of section 7.2,
``f(x_1, ..., x_m) = H(len(x_1) || x_1 || ... || len(x_m) || x_m)`` (each length a
32-bit big-endian byte count), and, for the HKDF instantiation, HKDF (RFC 5869) with
``label`` as salt, ``secret`` as input keying material and ``f_context`` as info.
:func:`cat_kdf` is exactly that (HKDF-SHA-256 or -384); the test vectors in
``tests/kms/test_catkdf.py`` come from the standard's reference implementation.

A hybrid link key (:func:`hybrid_pad`) puts the QKD material in the pre-shared-key
slot and the ML-KEM-derived link material in ``k_1``, so it is secret if either is;
the context binds it to the link, the key_ID, the SAEs and the algorithms, and MA/MB
name the hop's sender and receiver.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HASHES = {"sha256": (hashlib.sha256, hashes.SHA256), "sha384": (hashlib.sha384, hashes.SHA384)}
#: The algorithm name recorded in a hybrid key's provenance.
HYBRID_ALGORITHM = "catkdf-sha256"
#: The longest hybrid key: HKDF-SHA-256 yields at most 255 * 32 bytes.
MAX_HYBRID_KEY_BYTES = 255 * 32
HYBRID_LABEL = b"qkms hybrid link key v1"


def context_hash(hash_name: str, values: Sequence[bytes]) -> bytes:
    """TS 103 744 section 7.2 concatenate-and-hash formatting: H(len(x1)||x1||...)."""
    digest = HASHES[hash_name][0]()
    for value in values:
        digest.update(struct.pack(">I", len(value)))
        digest.update(value)
    return digest.digest()


def cat_kdf(hash_name: str, length_bytes: int, psk: bytes, secrets: Sequence[bytes], context: bytes,
            ma: bytes, mb: bytes, label: bytes) -> bytes:
    """TS 103 744 section 8.2 CatKDF with HKDF over ``hash_name`` (``sha256``/``sha384``)."""
    secret = psk + b"".join(secrets)
    f_context = context_hash(hash_name, (context, ma, mb))
    return HKDF(HASHES[hash_name][1](), length_bytes, salt=label, info=f_context).derive(secret)


def hybrid_context(link_id: str, key_id: str, master_id: str, slave_ids: Sequence[str],
                   algorithms: Sequence[str]) -> bytes:
    """The context of one hybrid key on one link: every field length-prefixed, so no two
    different contexts encode alike."""
    fields = [b"qkms-hybrid-v1", link_id.encode(), key_id.encode(), master_id.encode(),
              b",".join(s.encode() for s in sorted(slave_ids)), b",".join(a.encode() for a in algorithms)]
    return b"".join(struct.pack(">I", len(field)) + field for field in fields)


def hybrid_pad(qkd_material: bytes, pqc_material: bytes, context: bytes, sender: str, receiver: str) -> bytes:
    """A link key as long as either input, from QKD material (psk) and PQC material (k_1)."""
    if len(qkd_material) != len(pqc_material):
        raise ValueError("hybrid inputs differ in length")
    return cat_kdf("sha256", len(qkd_material), qkd_material, [pqc_material], context,
                   sender.encode(), receiver.encode(), HYBRID_LABEL)
