"""The KEM-backend extension point: one interface over cryptography, liboqs and pqcrypto.

Backends differ in argument order (cryptography's ``encapsulate()`` returns
``(shared_secret, ciphertext)``, liboqs and pqcrypto return ``(ciphertext,
shared_secret)``) and in how they hold a decapsulation key; this interface fixes one
order, :class:`Encapsulation`, and keeps decapsulation keys opaque to their backend.
Keys travel between backends as the standard encodings (FIPS 203 encapsulation keys
and ciphertexts), so one backend can encapsulate to another's key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from kms.errors import ConfigError


@dataclass(frozen=True, repr=False)
class Encapsulation:
    """What encapsulating to a public key yields: a shared secret and its ciphertext."""

    shared_secret: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"Encapsulation(ciphertext_bytes={len(self.ciphertext)})"


@dataclass(frozen=True, repr=False)
class KemKeyPair:
    """An ephemeral key pair: the encapsulation key's bytes and the backend's own handle
    of the decapsulation key (used once, then dropped)."""

    encapsulation_key: bytes
    decapsulation_key: Any

    def __repr__(self) -> str:
        return f"KemKeyPair(encapsulation_key_bytes={len(self.encapsulation_key)})"


class KemUnavailable(ConfigError):
    """The backend cannot run here (its library is missing), or lacks the algorithm."""


class KemBackend(ABC):
    """A library that implements key encapsulation mechanisms (contract suite:
    tests/adapters/pqc/test_kem_backends.py, run against every available backend)."""

    name: ClassVar[str]

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """(True, version) if the backend can run here, else (False, why not). Fast (well
        under a second), never downloads, installs or exits; safe to call repeatedly."""

    @abstractmethod
    def algorithms(self) -> tuple[str, ...]:
        """The KEMs it offers, by their standard names (``ML-KEM-768``...); () if unavailable."""

    @abstractmethod
    def keygen(self, algorithm: str) -> KemKeyPair:
        """A fresh key pair of ``algorithm``."""

    @abstractmethod
    def encapsulate(self, algorithm: str, encapsulation_key: bytes) -> Encapsulation:
        """A fresh shared secret for the holder of ``encapsulation_key``; ValueError if the
        key is malformed."""

    @abstractmethod
    def decapsulate(self, algorithm: str, key_pair: KemKeyPair, ciphertext: bytes) -> bytes:
        """The shared secret in ``ciphertext`` for ``key_pair``; ValueError if malformed."""

    def require(self, algorithm: str) -> None:
        """KemUnavailable unless this backend runs here and offers ``algorithm``."""
        ok, reason = self.available()
        if not ok:
            raise KemUnavailable(f"backend: {self.name} is unavailable: {reason}")
        if algorithm not in self.algorithms():
            raise KemUnavailable(f"kem: {algorithm} is not offered by the {self.name} backend "
                                 f"(it offers {', '.join(self.algorithms())})")


def _cryptography() -> KemBackend:
    from adapters.pqc.kem_cryptography import CryptographyKem
    return CryptographyKem()


def _liboqs() -> KemBackend:
    from adapters.pqc.kem_liboqs import LiboqsKem
    return LiboqsKem()


def _pqcrypto() -> KemBackend:
    from adapters.pqc.kem_pqcrypto import PqcryptoKem
    return PqcryptoKem()


#: Backend name -> factory; ``cryptography`` is the default.
BACKENDS: dict[str, Callable[[], KemBackend]] = {"cryptography": _cryptography, "liboqs": _liboqs,
                                                 "pqcrypto": _pqcrypto}
DEFAULT_BACKEND = "cryptography"


def kem_backend(name: str) -> KemBackend:
    """The backend called ``name``; ConfigError naming the setting for an unknown one."""
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown KEM backend {name!r} (known: {', '.join(BACKENDS)})")
    return BACKENDS[name]()


def available_backends() -> list[KemBackend]:
    """Every backend that can run on this machine."""
    return [backend for backend in map(kem_backend, BACKENDS) if backend.available()[0]]
