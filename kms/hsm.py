"""Key-encryption keys in an HSM, reached through PKCS#11 (``kek.pkcs11``): the AES-256
key is generated in the token as sensitive and non-extractable and never leaves it;
every seal and unseal is a CKM_AES_GCM operation in the token (12-byte nonce, 128-bit
tag, the sealer's associated data).

Which keys a node uses is named in its HSM keyring file, labels instead of KEKs:

    qkms-hsm-keyring-v1
    current qkms-kek-20261130T051600Z-1a2b
    previous qkms-kek-20261001T090000Z-3c4d

re-read when it changes like a ``kek.file`` (kms.keyring.KeyringFile), rewritten
atomically by ``qkms kek rotate`` (kms.rotation) and first written by ``qkms kek
init-hsm``. A key's ``kek_id`` is its CKA_ID: 8 random bytes chosen when qkms generates
the key and stored on the key object, so nothing about the key is exported or computed
outside the token to tell keys apart.

A PKCS#11 library must not be used across fork (gunicorn forks its workers): the
library and one logged-in session per token are opened lazily in each process and
opened again when ``os.getpid()`` changes (C_Finalize + C_Initialize in the child). The
session is shared by the threads and greenlets of a process under a lock (PKCS#11 login
state belongs to the whole process, so one session per token is also the simplest
correct use of it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms.config import Pkcs11KekConfig
from kms.errors import ConfigError, StoreError
from kms.extras import optional_dependency
from kms.keyring import KEK_ID_BYTES, KEK_SIZE_BYTES, Kek, Keyring, KeyringFile, KeyringSource, current_and_previous
from kms.pki.files import write_atomic
from kms.rotation import KEYRING_FILE_MODE, RotatableKeyring

log = logging.getLogger("qkms.hsm")

HSM_KEYRING_HEADER = "qkms-hsm-keyring-v1"
SETTING = "kek.pkcs11"
FEATURE = "a KEK in an HSM (kek.pkcs11)"
TAG_BITS = 128
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def load_pkcs11() -> Any:
    with optional_dependency(extra="hsm", feature=FEATURE):
        import pkcs11
    return pkcs11


@dataclass
class _Opened:
    """One process's session with a token, its lock and the key objects found in it."""

    pid: int
    session: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, Any] = field(default_factory=dict)


# Process-wide because PKCS#11 state is: the library is initialised once per process and
# login belongs to the process, not to one session. Keyed by module path (the pid that
# initialised it) and by (module, token label).
_registry_lock = threading.Lock()
_initialised_in: dict[str, int] = {}
_opened: dict[tuple[str, str], _Opened] = {}


def _new_registry_lock() -> None:
    """A forked child gets a lock of its own (the parent's may have been held by a thread
    that the child does not have)."""
    global _registry_lock
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_registry_lock)


def reopen_all() -> None:
    """Forget every session of this process and have each module initialised anew at its
    next use, when it reads its own configuration again (SoftHSM's SOFTHSM2_CONF: the
    tests give every test its own token directory)."""
    with _registry_lock:
        _opened.clear()
        for module in _initialised_in:
            _initialised_in[module] = 0


class Pkcs11Token:
    """A token of a PKCS#11 module, logged in with the PIN of an environment variable."""

    def __init__(self, module: Path | str, token_label: str, pin_env: str):
        self.module, self.token_label, self.pin_env = str(module), token_label, pin_env

    def __repr__(self) -> str:
        return f"Pkcs11Token(module={self.module!r}, token_label={self.token_label!r})"

    def opened(self) -> _Opened:
        """This process's session with the token (opened now if this process has none)."""
        pid = os.getpid()
        with _registry_lock:
            opened = _opened.get((self.module, self.token_label))
            if opened is None or opened.pid != pid:
                opened = _Opened(pid, self._open_session(pid))
                _opened[(self.module, self.token_label)] = opened
            return opened

    def forget(self, opened: _Opened) -> None:
        """Drop a session that failed, so the next operation opens a new one."""
        with _registry_lock:
            if _opened.get((self.module, self.token_label)) is opened:
                del _opened[(self.module, self.token_label)]

    def _open_session(self, pid: int) -> Any:
        try:
            return self._open_new_session(pid)
        finally:
            clear_openssl_errors()

    def _open_new_session(self, pid: int) -> Any:
        pkcs11 = load_pkcs11()
        pin = os.environ.get(self.pin_env)
        if pin is None:
            raise ConfigError(f"{SETTING}.pin_env: environment variable {self.pin_env} is not set")
        try:
            lib = pkcs11.lib(self.module)
        except pkcs11.PKCS11Error:
            raise ConfigError(f"{SETTING}.module: cannot load the PKCS#11 module {self.module}") from None
        if _initialised_in.setdefault(self.module, pid) != pid:
            lib.reinitialize()  # a forked child: the parent's initialisation is not ours
            _initialised_in[self.module] = pid
        try:
            token = lib.get_token(token_label=self.token_label)
        except pkcs11.NoSuchToken:
            raise ConfigError(f"{SETTING}.token_label: no token with this label") from None
        except pkcs11.MultipleTokensReturned:
            raise ConfigError(f"{SETTING}.token_label: more than one token has this label") from None
        try:
            return token.open(user_pin=pin, rw=True)
        except pkcs11.UserAlreadyLoggedIn:
            return token.open(rw=True)  # another part of this process logged in: login is per process
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange, pkcs11.PinExpired, pkcs11.PinLocked):
            raise ConfigError(f"{SETTING}.pin_env: the token refused the PIN in {self.pin_env}") from None

    def key(self, opened: _Opened, label: str) -> Any:
        """The AES key object labelled ``label`` (looked up once per session)."""
        if label not in opened.keys:
            pkcs11 = load_pkcs11()
            try:
                opened.keys[label] = opened.session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY,
                                                            key_type=pkcs11.KeyType.AES, label=label)
            except pkcs11.NoSuchKey:
                raise ConfigError(f"{SETTING}.keyring: no AES key labelled {label!r} in the token") from None
            except pkcs11.MultipleObjectsReturned:
                raise ConfigError(f"{SETTING}.keyring: more than one key is labelled {label!r}") from None
        return opened.keys[label]

    def generate_key(self, label: str) -> None:
        """A new AES-256 key in the token: stored, private, sensitive, never extractable,
        for encryption only, with 8 random bytes as its CKA_ID (its kek_id)."""
        pkcs11 = load_pkcs11()
        opened = self.opened()
        with opened.lock:
            self.refuse_taken(opened, label)
            opened.session.generate_key(
                pkcs11.KeyType.AES, KEK_SIZE_BYTES * 8, id=secrets.token_bytes(KEK_ID_BYTES), label=label,
                store=True, capabilities=pkcs11.MechanismFlag.ENCRYPT | pkcs11.MechanismFlag.DECRYPT,
                template=kek_restrictions(pkcs11.Attribute))

    def refuse_taken(self, opened: _Opened, label: str, kek_id: bytes | None = None) -> None:
        """ConfigError if the token holds an object labelled ``label`` (or one whose
        CKA_ID is ``kek_id``); the caller holds ``opened.lock``."""
        attribute = load_pkcs11().Attribute
        if list(opened.session.get_objects({attribute.LABEL: label})):
            raise ConfigError(f"{SETTING}.keyring: the token already holds a key labelled {label!r}")
        for holder in opened.session.get_objects({attribute.ID: kek_id}) if kek_id is not None else ():
            raise ConfigError(f"{SETTING}: the token already holds a key with CKA_ID {kek_id.hex()} "
                              f"(labelled {holder[attribute.LABEL]!r})")


def kek_restrictions(attribute: Any) -> dict:
    """What every KEK object qkms makes is: private, sensitive, never extractable, and
    good for nothing but encryption (no wrap, unwrap, sign, verify or derive)."""
    return {attribute.SENSITIVE: True, attribute.EXTRACTABLE: False, attribute.PRIVATE: True,
            attribute.WRAP: False, attribute.UNWRAP: False, attribute.SIGN: False,
            attribute.VERIFY: False, attribute.DERIVE: False}


def clear_openssl_errors() -> None:
    """Empty this thread's OpenSSL error queue in every libcrypto loaded here.

    A PKCS#11 module built on OpenSSL (SoftHSM2) can leave an error there when it starts
    (seen: ENGINE NO_SUCH_ENGINE). Python's ssl module shares the queue: the next TLS read
    on this thread that would only wait for data (every gevent greenlet of a worker is on
    one thread) raises that error instead, and a client's connection dies."""
    for library in _libcrypto_handles():
        library.ERR_clear_error()


_libcrypto: list[Any] | None = None


def _libcrypto_handles() -> list[Any]:
    global _libcrypto
    if _libcrypto is None:
        try:
            with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
                paths = {line.split()[-1] for line in maps if "libcrypto" in line and line.rstrip().endswith(
                    tuple(f".so{suffix}" for suffix in ("", ".3", ".1.1")))}
        except OSError:
            paths = set()
        found = ctypes.util.find_library("crypto")
        handles = []
        for path in sorted(paths) or ([found] if found else []):
            try:
                handles.append(ctypes.CDLL(path))
            except OSError:
                continue
        _libcrypto = [handle for handle in handles if hasattr(handle, "ERR_clear_error")]
    return _libcrypto


#: Errors after which the session is no use any more: the next operation opens a new one.
_SESSION_LOST = ("SessionClosed", "SessionHandleInvalid", "DeviceRemoved", "DeviceError", "TokenNotPresent",
                 "TokenNotRecognised", "UserNotLoggedIn")


class Pkcs11Kek(Kek):
    """A KEK that is an AES-256 key object in a PKCS#11 token, known by its label."""

    def __init__(self, token: Pkcs11Token, label: str):
        self.token, self.label = token, label
        opened = token.opened()
        with opened.lock:
            kek_id = bytes(token.key(opened, label)[load_pkcs11().Attribute.ID] or b"")
        if len(kek_id) != KEK_ID_BYTES:
            raise ConfigError(f"{SETTING}.keyring: key {label!r} has no 8-byte CKA_ID (make keys with qkms)")
        self.kek_id = kek_id

    def __repr__(self) -> str:
        return f"Pkcs11Kek(label={self.label!r}, kek_id={self.kek_id.hex()})"

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._gcm("encrypt", nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        return self._gcm("decrypt", nonce, ciphertext, aad)

    def _gcm(self, operation: str, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        pkcs11 = load_pkcs11()
        opened = self.token.opened()
        with opened.lock:
            try:
                key = self.token.key(opened, self.label)
                return getattr(key, operation)(data, mechanism=pkcs11.Mechanism.AES_GCM,
                                               mechanism_param=pkcs11.GCMParams(nonce, aad, TAG_BITS))
            except pkcs11.PKCS11Error as exc:
                failure = type(exc).__name__
        if failure in _SESSION_LOST:
            log.warning("%s: HSM session failed (%s); the next operation opens a new one", self.token, failure)
            self.token.forget(opened)
            raise StoreError(f"kek: the HSM session failed ({failure}); the next operation opens a new one")
        if operation == "decrypt":
            raise StoreError("sealed value failed authentication")
        raise StoreError(f"kek: the HSM refused to seal ({failure})")


@dataclass(frozen=True)
class KeyLabels:
    """An HSM keyring file: the current key's label and the previous ones'."""

    current: str
    previous: tuple[str, ...] = ()

    def to_text(self) -> bytes:
        lines = [HSM_KEYRING_HEADER, f"current {self.current}", *(f"previous {label}" for label in self.previous)]
        return ("\n".join(lines) + "\n").encode()


def parse_key_labels(text: bytes) -> KeyLabels:
    """The labels an HSM keyring file names; ConfigError naming the line otherwise."""
    setting = f"{SETTING}.keyring"
    lines = text.decode("ascii", "replace").splitlines()
    if not lines or lines[0].strip() != HSM_KEYRING_HEADER:
        raise ConfigError(f"{setting}: not an HSM keyring (first line must be {HSM_KEYRING_HEADER})")
    current, previous = current_and_previous(lines[1:], 2, f"{setting}:", "LABEL", "key", _label)
    return KeyLabels(current, previous)


def _label(word: str, where: str) -> str:
    if not LABEL_PATTERN.match(word):
        raise ConfigError(f"{where}: expected 'current LABEL' or 'previous LABEL'")
    return word


def new_key_label() -> str:
    """A label for a new key: when it was made, and 2 random bytes (two nodes on one token)."""
    return f"qkms-kek-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(2)}"


class HsmKeyringFile(RotatableKeyring):
    """The HSM keyring file of ``kek.pkcs11``: labels of keys in ``token``."""

    def __init__(self, path: Path, token: Pkcs11Token):
        self.path, self.token = Path(path), token

    @classmethod
    def from_config(cls, settings: Pkcs11KekConfig) -> "HsmKeyringFile":
        """The keyring file and token of a node's ``kek.pkcs11`` settings."""
        return cls(settings.keyring, Pkcs11Token(settings.module, settings.token_label, settings.pin_env))

    def labels(self) -> KeyLabels:
        try:
            return parse_key_labels(self.path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{SETTING}.keyring: cannot read ({exc.strerror})") from None

    def keyring_of(self, labels: KeyLabels) -> Keyring:
        try:
            return Keyring(Pkcs11Kek(self.token, labels.current),
                           tuple(Pkcs11Kek(self.token, label) for label in labels.previous))
        except StoreError as exc:
            raise ConfigError(f"{SETTING}: {exc.message}") from None

    def initialise(self, label: str | None = None) -> str:
        """The first key: generated in the token, named current in a new keyring file."""
        if self.path.exists():
            raise ConfigError(f"{SETTING}.keyring: {self.path} exists already (rotate with qkms kek rotate)")
        label = label or new_key_label()
        self.token.generate_key(label)
        write_atomic(self.path, KeyLabels(label).to_text(), KEYRING_FILE_MODE)
        return label

    def source(self) -> KeyringSource:
        return KeyringFile(self.path, lambda text: self.keyring_of(parse_key_labels(text)), f"{SETTING}.keyring")

    def start(self) -> bool:
        """A key generated before the file names it: a crash in between leaves an unused
        key in the token, and the rerun makes another."""
        labels = self.labels()
        if labels.previous:
            return True
        label = new_key_label()
        self.token.generate_key(label)
        write_atomic(self.path, KeyLabels(label, (labels.current,)).to_text(), KEYRING_FILE_MODE)
        return False

    def current_alone(self) -> Keyring:
        return self.keyring_of(KeyLabels(self.labels().current))

    def retire(self) -> int:
        """The old keys leave the keyring file; their objects stay in the token (deleting
        them is the HSM operator's call, docs/security.md)."""
        labels = self.labels()
        write_atomic(self.path, KeyLabels(labels.current).to_text(), KEYRING_FILE_MODE)
        return len(labels.previous)

