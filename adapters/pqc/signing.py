"""ML-DSA (FIPS 204) identities of nodes: key files, pinned peer keys, signatures.

Each node holds one ML-DSA private key (PKCS#8 PEM, mode 0600) and pins, per PQC link,
its peer's public key (SubjectPublicKeyInfo PEM). A key is named in messages by its
fingerprint, SHA-256 over the raw public key, so a node can tell a peer whose key it
has not pinned from a message that was tampered with.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa

from kms.errors import ConfigError

ALGORITHMS = {"ML-DSA-44": (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey),
              "ML-DSA-65": (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
              "ML-DSA-87": (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey)}
#: The ML-DSA context string (FIPS 204) of every qkms link-key signature.
SIGNATURE_CONTEXT = b"qkms ml-kem link v1"


def new_key_pair(algorithm: str) -> tuple[bytes, bytes]:
    """A fresh (private PEM, public PEM) pair of ``algorithm``."""
    private = ALGORITHMS[algorithm][0].generate()
    return (private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            private.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def fingerprint(public_key) -> str:
    """SHA-256 (hex) over the raw public key."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()


class SigningKey:
    """This node's ML-DSA private key, loaded from ``setting``'s file."""

    def __init__(self, private_key):
        self._key = private_key
        self.fingerprint = fingerprint(private_key.public_key())

    @classmethod
    def load(cls, path: Path, algorithm: str, setting: str = "signing_key") -> "SigningKey":
        if path.is_file() and path.stat().st_mode & 0o077:
            raise ConfigError(f"{setting}: {path} must be readable by its owner only (chmod 600)")
        key = _load(path, setting, algorithm, lambda data: serialization.load_pem_private_key(data, None), 0)
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, SIGNATURE_CONTEXT)

    def __repr__(self) -> str:
        return f"SigningKey(fingerprint={self.fingerprint[:16]}...)"


class PinnedKey:
    """A peer's ML-DSA public key as pinned in this node's configuration."""

    def __init__(self, public_key):
        self._key = public_key
        self.fingerprint = fingerprint(public_key)

    @classmethod
    def load(cls, path: Path, algorithm: str, setting: str = "peer_public_key") -> "PinnedKey":
        return cls(_load(path, setting, algorithm, serialization.load_pem_public_key, 1))

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self._key.verify(signature, message, SIGNATURE_CONTEXT)
        except InvalidSignature:
            return False
        return True


def _load(path: Path, setting: str, algorithm: str, parse, kind: int):
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    try:
        key = parse(data)
    except (ValueError, TypeError):
        raise ConfigError(f"{setting}: {path} is not a PEM key") from None
    if not isinstance(key, ALGORITHMS[algorithm][kind]):
        raise ConfigError(f"{setting}: {path} is not an {algorithm} key")
    return key
