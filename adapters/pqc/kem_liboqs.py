"""KEMs from liboqs through liboqs-python (the ``liboqs`` extra), when the native library
is present.

``import oqs`` without the native liboqs does not fail cleanly: it waits, tries to
download and build liboqs, and raises SystemExit. So this module never imports ``oqs``
until :func:`probe` has found both the native library and the Python package, and
probing itself only looks at files: it answers within milliseconds.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec

from adapters.pqc.kem import Encapsulation, KemBackend, KemKeyPair

#: Where liboqs-python itself looks for the library, besides the linker's search path.
KNOWN_LIBRARY_GLOBS = ("/usr/local/lib/liboqs.so*", "/usr/lib/liboqs.so*", "/usr/lib/*-linux-gnu/liboqs.so*",
                       "/usr/local/lib64/liboqs.so*", os.path.expanduser("~/_oqs/lib/liboqs.so*"))
_ALGORITHMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")


@dataclass(frozen=True)
class Probe:
    """Whether liboqs can be used here, and why (not)."""

    available: bool
    reason: str


def _library_paths() -> list[str]:
    found = [ctypes.util.find_library("oqs")] if ctypes.util.find_library("oqs") else []
    install = os.environ.get("OQS_INSTALL_PATH")
    patterns = ((f"{install}/lib/liboqs.so*", f"{install}/lib64/liboqs.so*") if install else ()) + KNOWN_LIBRARY_GLOBS
    return found + [path for pattern in patterns for path in sorted(glob.glob(pattern))]


def probe() -> Probe:
    """Look for the native library and the ``oqs`` package without importing either."""
    libraries = _library_paths()
    if not libraries:
        return Probe(False, "the native liboqs library is not installed (no liboqs.so on the linker path, "
                            "in OQS_INSTALL_PATH or the usual prefixes)")
    if find_spec("oqs") is None:
        return Probe(False, f"liboqs-python is not installed (pip install 'qkms[liboqs]'; library {libraries[0]})")
    return Probe(True, f"liboqs at {libraries[0]}")


def _oqs():
    # Imported by name, only after probe() found the native library: liboqs-python
    # cannot be installed usefully where liboqs is missing (see the module docs).
    return import_module("oqs")


class LiboqsKem(KemBackend):
    """liboqs returns ``(ciphertext, shared_secret)`` from ``encap_secret``: normalised here."""

    name = "liboqs"

    def available(self) -> tuple[bool, str]:
        found = probe()
        return found.available, found.reason

    def algorithms(self) -> tuple[str, ...]:
        if not self.available()[0]:
            return ()
        enabled = set(_oqs().get_enabled_kem_mechanisms())
        return tuple(name for name in _ALGORITHMS if name in enabled)

    def keygen(self, algorithm: str) -> KemKeyPair:
        kem = _oqs().KeyEncapsulation(algorithm)
        return KemKeyPair(bytes(kem.generate_keypair()), kem)

    def encapsulate(self, algorithm: str, encapsulation_key: bytes) -> Encapsulation:
        with _oqs().KeyEncapsulation(algorithm) as kem:
            if len(encapsulation_key) != kem.details["length_public_key"]:
                raise ValueError("encapsulation key has the wrong length")
            ciphertext, shared_secret = kem.encap_secret(encapsulation_key)
        return Encapsulation(bytes(shared_secret), bytes(ciphertext))

    def decapsulate(self, algorithm: str, key_pair: KemKeyPair, ciphertext: bytes) -> bytes:
        kem = key_pair.decapsulation_key
        if len(ciphertext) != kem.details["length_ciphertext"]:
            raise ValueError("ciphertext has the wrong length")
        return bytes(kem.decap_secret(ciphertext))
