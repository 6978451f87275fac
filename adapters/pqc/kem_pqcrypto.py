"""KEMs from the ``pqcrypto`` package (the ``pqc`` extra): ML-KEM, and the code-based HQC
and Classic McEliece."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

from adapters.pqc.kem import Encapsulation, KemBackend, KemKeyPair
from kms.extras import optional_dependency

#: Standard name -> pqcrypto module.
_MODULES = {
    "ML-KEM-512": "ml_kem_512", "ML-KEM-768": "ml_kem_768", "ML-KEM-1024": "ml_kem_1024",
    "HQC-128": "hqc_128", "HQC-192": "hqc_192", "HQC-256": "hqc_256",
    "Classic-McEliece-348864": "mceliece_348864", "Classic-McEliece-460896": "mceliece_460896",
    "Classic-McEliece-6688128": "mceliece_6688128", "Classic-McEliece-6960119": "mceliece_6960119",
    "Classic-McEliece-8192128": "mceliece_8192128",
}


def _module(algorithm: str):
    with optional_dependency(extra="pqc", feature="the pqcrypto KEM backend"):
        import pqcrypto.kem  # noqa: F401  (its submodules are generated on import)
    return import_module(f"pqcrypto.kem.{_MODULES[algorithm]}")


class PqcryptoKem(KemBackend):
    """pqcrypto returns ``(ciphertext, shared_secret)`` from ``encaps``: normalised here."""

    name = "pqcrypto"

    def available(self) -> tuple[bool, str]:
        if find_spec("pqcrypto") is None:
            return False, "pqcrypto is not installed (pip install 'qkms[pqc]')"
        try:
            return True, f"pqcrypto {version('pqcrypto')}"
        except PackageNotFoundError:
            return True, "pqcrypto (version unknown)"

    def algorithms(self) -> tuple[str, ...]:
        return tuple(_MODULES) if self.available()[0] else ()

    def keygen(self, algorithm: str) -> KemKeyPair:
        public, secret = _module(algorithm).keygen()
        return KemKeyPair(bytes(public), bytes(secret))

    def encapsulate(self, algorithm: str, encapsulation_key: bytes) -> Encapsulation:
        module = _module(algorithm)
        if len(encapsulation_key) != module.PUBLIC_KEY_SIZE:
            raise ValueError("encapsulation key has the wrong length")
        ciphertext, shared_secret = module.encaps(encapsulation_key)
        return Encapsulation(bytes(shared_secret), bytes(ciphertext))

    def decapsulate(self, algorithm: str, key_pair: KemKeyPair, ciphertext: bytes) -> bytes:
        module = _module(algorithm)
        if len(ciphertext) != module.CIPHERTEXT_SIZE:
            raise ValueError("ciphertext has the wrong length")
        return bytes(module.decaps(key_pair.decapsulation_key, ciphertext))
