"""Key-encryption keys: a keyring of one current KEK (it seals) and older ones (they
only unseal), each known by an 8-byte identifier written in front of what it sealed.

The keyring of a node is its ``kek.file``, which holds either one KEK (64 hex
characters, Base64 of 32 bytes, or 32 raw bytes; what `qkms init` writes) or a keyring:

    qkms-keyring-v1
    current <64 hex>
    previous <64 hex>
    previous <64 hex>

``qkms kek rotate`` rewrites the file atomically (kms.rotation); every process that
seals or unseals re-reads it when it changes (:class:`KeyringFile`), so a rotation
needs no restart. A KEK may also live in an HSM (kms.hsm), never leaving it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms.errors import ConfigError, StoreError

T = TypeVar("T")

log = logging.getLogger("qkms.keyring")

KEK_SIZE_BYTES = 32
KEK_ID_BYTES = 8
KEYRING_HEADER = "qkms-keyring-v1"


class Kek(ABC):
    """One AES-256-GCM key-encryption key."""

    kek_id: bytes

    @abstractmethod
    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Ciphertext and tag of ``plaintext``."""

    @abstractmethod
    def decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """The plaintext; StoreError if the tag does not verify."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kek_id={self.kek_id.hex()})"


def software_kek_id(key: bytes) -> bytes:
    """The identifier of a KEK held in memory: a MAC of a constant under the key (it
    tells keys apart and reveals nothing about them)."""
    return hmac.new(key, b"qkms kek id", hashlib.sha256).digest()[:KEK_ID_BYTES]


class SoftwareKek(Kek):
    """A KEK held in this process (read from a file or the environment)."""

    def __init__(self, key: bytes):
        if len(key) != KEK_SIZE_BYTES:
            raise ConfigError("kek: must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        self.kek_id = software_kek_id(key)

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            raise StoreError("sealed value failed authentication") from None


@dataclass(frozen=True)
class Keyring:
    """The current KEK and the previous ones still needed to unseal."""

    current: Kek
    previous: tuple[Kek, ...] = ()

    def get(self, kek_id: bytes) -> Kek | None:
        return next((kek for kek in self.all() if kek.kek_id == kek_id), None)

    def all(self) -> tuple[Kek, ...]:
        return (self.current, *self.previous)


class KeyringSource(ABC):
    """Where a node's keyring comes from; :meth:`keyring` is called for every seal and
    unseal, so a source that can change (a file) answers with its newest version."""

    @abstractmethod
    def keyring(self) -> Keyring:
        """The keyring as it is now."""


class StaticKeyring(KeyringSource):
    """A keyring that never changes (a KEK from the environment, tests)."""

    def __init__(self, keyring: Keyring):
        self._keyring = keyring

    def keyring(self) -> Keyring:
        return self._keyring


def parse_kek(text: bytes, setting: str = "kek") -> bytes:
    """Accept a KEK as 64 hex characters, Base64 of 32 bytes, or 32 raw bytes."""
    import base64
    import binascii

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
    raise ConfigError(f"{setting}: must be 32 bytes given as hex, Base64 or raw bytes")


@dataclass(frozen=True, repr=False)
class KeyringKeys:
    """A keyring file's raw keys (current first); never logged."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def keyring(self) -> Keyring:
        return Keyring(SoftwareKek(self.current), tuple(SoftwareKek(key) for key in self.previous))

    def to_text(self) -> bytes:
        lines = [KEYRING_HEADER, f"current {self.current.hex()}", *(f"previous {key.hex()}" for key in self.previous)]
        return ("\n".join(lines) + "\n").encode()


def parse_keyring(text: bytes, setting: str = "kek") -> KeyringKeys:
    """A keyring file's keys: the keyring format, or one KEK (then it is the current one)."""
    if not text.startswith(KEYRING_HEADER.encode()):
        return KeyringKeys(parse_kek(text, setting))
    lines = text.decode("ascii", "replace").splitlines()[1:]
    current, previous = current_and_previous(lines, 2, f"{setting}: keyring", "HEX", "KEK",
                                             lambda word, where: parse_kek(word.encode(), where))
    return KeyringKeys(current, previous)


def current_and_previous(lines: list[str], first_number: int, where: str, token: str, noun: str,
                         value: Callable[[str, str], T]) -> tuple[T, tuple[T, ...]]:
    """The ``current`` item and the ``previous`` ones that the lines of a rotation file
    (a KEK keyring, an HSM keyring; numbered from ``first_number``) name: exactly one
    ``current TOKEN`` line, any ``previous TOKEN`` lines, blank lines and ``#`` comments.
    ``value(word, where_of_line)`` reads one TOKEN; ConfigError names ``where`` and the line."""
    current, previous = None, []
    for number, line in enumerate(lines, start=first_number):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2 or words[0] not in ("current", "previous"):
            raise ConfigError(f"{where} line {number}: expected 'current {token}' or 'previous {token}'")
        item = value(words[1], f"{where} line {number}")
        if words[0] == "previous":
            previous.append(item)
        elif current is not None:
            raise ConfigError(f"{where} names more than one current {noun}")
        else:
            current = item
    if current is None:
        raise ConfigError(f"{where} names no current {noun}")
    return current, tuple(previous)


def _file_version(path: Path) -> tuple[int, int, int]:
    status = os.stat(path)
    return status.st_ino, status.st_mtime_ns, status.st_size


def _file_version_or_none(path: Path) -> tuple[int, int, int] | None:
    try:
        return _file_version(path)
    except OSError:
        return None


def _software_keyring(text: bytes) -> Keyring:
    return parse_keyring(text, "kek.file").keyring()


class KeyringFile(KeyringSource):
    """The keyring in a file, re-read whenever the file changes (inode, mtime, size):
    a rotation's new keyring is used from the next seal on, in every process.

    ``load`` turns the file's bytes into a keyring (by default KEKs written in it; an HSM
    keyring file names key labels instead, kms.hsm); ``setting`` names it in errors."""

    def __init__(self, path: Path, load: Callable[[bytes], Keyring] = _software_keyring, setting: str = "kek.file"):
        self.path = Path(path)
        self._load, self._setting = load, setting
        self._version, self._keyring = self._read()

    def _read(self) -> tuple[tuple[int, int, int], Keyring]:
        try:
            version = _file_version(self.path)
            text = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{self._setting}: cannot read ({exc.strerror})") from None
        return version, self._load(text)

    def keyring(self) -> Keyring:
        try:
            changed = _file_version(self.path) != self._version
        except OSError:
            changed = False  # mid-replace, or gone: keep the keyring in use
        if changed:
            try:
                self._version, self._keyring = self._read()
            except ConfigError as exc:
                log.error("%s: keyring not reloaded, the one in use stays: %s", self.path, exc.message)
                self._version = _file_version_or_none(self.path) or self._version
        return self._keyring


def read_keyring_keys(path: Path, setting: str = "kek.file") -> KeyringKeys:
    """The raw keys of a keyring file (for rotating it, or moving them into an HSM);
    errors name ``setting``."""
    try:
        return parse_keyring(Path(path).read_bytes(), setting)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read ({exc.strerror})") from None
