"""ML-DSA identities for tests: deterministic key pairs (from a name) and the files one
end of an ML-KEM link reads, laid out as the ``ml-kem`` section in PQC_SECTION names them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from adapters.pqc.signing import ALGORITHMS

#: An ``ml-kem`` source section for tests: small blocks, quickly.
PQC_SECTION = {"kind": "ml-kem", "signing_key": "pqc/self.key", "peer_public_key": "pqc/peer.pub",
               "block_bytes": 1024, "blocks_per_s": 20}


def key_pair(name: str, algorithm: str = "ML-DSA-65") -> tuple[bytes, bytes]:
    """(private PEM, public PEM) derived from ``name``: the same in every run."""
    seed = hashlib.sha256(f"qkms test ml-dsa key {name}".encode()).digest()
    private = ALGORITHMS[algorithm][0].from_seed_bytes(seed)
    return (private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            private.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def end_files(me: str, peer: str, algorithm: str = "ML-DSA-65", pinned: str | None = None) -> dict[str, bytes]:
    """What ``me``'s end of a link with ``peer`` reads: its own private key and the pinned
    public key of ``pinned`` (default: the real peer)."""
    return {"pqc/self.key": key_pair(me, algorithm)[0], "pqc/peer.pub": key_pair(pinned or peer, algorithm)[1]}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` under ``root``, owner-readable only (as `qkms init` writes keys)."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, 0o600)
