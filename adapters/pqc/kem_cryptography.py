"""ML-KEM from pyca/cryptography (>= 46: ML-KEM-768 and ML-KEM-1024, no ML-KEM-512)."""

from __future__ import annotations

from importlib.metadata import version

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import mlkem

from adapters.pqc.kem import Encapsulation, KemBackend, KemKeyPair

_PRIVATE = {"ML-KEM-768": mlkem.MLKEM768PrivateKey, "ML-KEM-1024": mlkem.MLKEM1024PrivateKey}
_PUBLIC = {"ML-KEM-768": mlkem.MLKEM768PublicKey, "ML-KEM-1024": mlkem.MLKEM1024PublicKey}


class CryptographyKem(KemBackend):
    """The default backend: always installed with qkms."""

    name = "cryptography"

    def available(self) -> tuple[bool, str]:
        try:
            mlkem.MLKEM768PrivateKey.generate()
        except UnsupportedAlgorithm as exc:  # an OpenSSL build without ML-KEM
            return False, f"cryptography {version('cryptography')} offers no ML-KEM here ({exc})"
        return True, f"cryptography {version('cryptography')}"

    def algorithms(self) -> tuple[str, ...]:
        return tuple(_PRIVATE) if self.available()[0] else ()

    def keygen(self, algorithm: str) -> KemKeyPair:
        private = _PRIVATE[algorithm].generate()
        return KemKeyPair(private.public_key().public_bytes_raw(), private)

    def encapsulate(self, algorithm: str, encapsulation_key: bytes) -> Encapsulation:
        shared_secret, ciphertext = _PUBLIC[algorithm].from_public_bytes(encapsulation_key).encapsulate()
        return Encapsulation(shared_secret, ciphertext)

    def decapsulate(self, algorithm: str, key_pair: KemKeyPair, ciphertext: bytes) -> bytes:
        return key_pair.decapsulation_key.decapsulate(ciphertext)
