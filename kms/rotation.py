"""KEK rotation: a new current KEK, every sealed value of the node re-sealed under it
while the node serves, then the old KEK retired, with a crash at any point leaving
every value readable and a rerun finishing the job.

The keyring file (kms.keyring: the KEKs themselves; kms.hsm: labels of keys in an HSM)
goes through three states, each written atomically (a new file renamed over the old,
fsynced):

  1. {current: OLD}                      before
  2. {current: NEW, previous: [OLD]}     every process seals under NEW from its next
                                         seal on and still unseals OLD
  3. {current: NEW}                      written only once a full pass finds every value
                                         sealed under NEW and readable with NEW alone

Values are re-sealed by compare-and-swap (kms.sealed_items), so a value claimed,
carved or taken meanwhile is never brought back or overwritten. A rerun that finds
state 2 resumes with its NEW instead of making another key. Passes repeat until one
finds nothing left under an old KEK and ``grace_s`` has passed since state 2 was
written (a value sealed under OLD just before the switch may reach Redis a moment
later).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kms.errors import QkmsError, StoreError
from kms.keyring import KEK_SIZE_BYTES, Keyring, KeyringFile, KeyringKeys, KeyringSource, read_keyring_keys
from kms.pki.files import write_atomic
from kms.sealed_items import SealedItems
from kms.sealing import Sealer

log = logging.getLogger("qkms.kek")

KEYRING_FILE_MODE = 0o600
#: Passes before giving up on values that keep changing under the walk.
MAX_PASSES = 20


class RotationError(QkmsError):
    """The rotation could not finish; the keyring keeps every KEK still needed."""

    message = "KEK rotation did not finish"


@dataclass
class RotationReport:
    """What a rotation did: values re-sealed, found already under the new KEK, changed
    under it (claimed or carved meanwhile), passes, and whether the old KEKs are gone."""

    resumed: bool = False
    resealed: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0
    passes: int = 0
    retired: int = 0


Hook = Callable[[str, RotationReport], None]


@contextmanager
def _locked(keyring_path: Path):
    """One rotation per keyring file at a time."""
    lock_path = keyring_path.with_name(f".{keyring_path.name}.rotate.lock")
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationError(f"another rotation of {keyring_path} is running") from None
        yield


class RotatableKeyring(ABC):
    """A keyring file that a rotation drives through its three states."""

    path: Path

    @abstractmethod
    def start(self) -> bool:
        """Write state 2 (a new current KEK, the old ones behind it) unless the file is
        already there (a crashed rotation): True if it was (the rotation resumes)."""

    @abstractmethod
    def source(self) -> KeyringSource:
        """The keyring as the file names it, re-read when it changes."""

    @abstractmethod
    def current_alone(self) -> Keyring:
        """A keyring of the current KEK alone (to check nothing needs the old ones)."""

    @abstractmethod
    def retire(self) -> int:
        """Write state 3 (the current KEK alone); how many KEKs it retired."""


class SoftwareKeyringFile(RotatableKeyring):
    """``kek.file``: the KEKs themselves, a new one drawn from the operating system."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self) -> bool:
        keys = read_keyring_keys(self.path)
        if keys.previous:
            return True
        rotated = KeyringKeys(os.urandom(KEK_SIZE_BYTES), (keys.current,))
        write_atomic(self.path, rotated.to_text(), KEYRING_FILE_MODE)
        return False

    def source(self) -> KeyringSource:
        return KeyringFile(self.path)

    def current_alone(self) -> Keyring:
        return KeyringKeys(read_keyring_keys(self.path).current).keyring()

    def retire(self) -> int:
        keys = read_keyring_keys(self.path)
        write_atomic(self.path, KeyringKeys(keys.current).to_text(), KEYRING_FILE_MODE)
        return len(keys.previous)


def reseal_pass(items: SealedItems, sealer: Sealer, batch_size: int, report: RotationReport, hook: Hook) -> int:
    """Re-seal every value not under the current KEK; returns how many were found."""
    stale = 0
    for batch in items.batches(batch_size):
        for item in batch:
            resealed = sealer.reseal(item.sealed, item.identity)
            if resealed is None:
                report.already_current += 1
                continue
            stale += 1
            if items.replace(item, resealed):
                report.resealed += 1
                hook(f"resealed:{report.resealed}", report)
            else:
                report.changed_meanwhile += 1
    return stale


def unreadable_with_current_only(items: SealedItems, alone: Keyring, context: str, batch_size: int) -> int:
    """How many values do not unseal with the ``alone`` keyring (the current KEK)."""
    sealer = Sealer(alone, context)
    failures = 0
    for batch in items.batches(batch_size):
        for item in batch:
            try:
                sealer.unseal(item.sealed, item.identity)
            except StoreError:
                failures += 1
    return failures


def rotate(keyring: RotatableKeyring, items: SealedItems, context: str, batch_size: int = 100,
           grace_s: float = 15.0, hook: Hook = lambda checkpoint, report: None) -> RotationReport:
    """Rotate the KEK of ``keyring`` for the node whose sealed values ``items`` are
    (``context``: its KME_ID). ``hook`` is told each checkpoint ("keyring",
    "resealed:N", "verified")."""
    report = RotationReport()
    with _locked(keyring.path):
        report.resumed = keyring.start()
        switched_at = time.monotonic()
        hook("keyring", report)
        sealer = Sealer(keyring.source(), context)
        while True:
            report.passes += 1
            stale = reseal_pass(items, sealer, batch_size, report, hook)
            if stale == 0 and time.monotonic() - switched_at >= grace_s:
                break
            if report.passes >= MAX_PASSES:
                raise RotationError(f"values kept changing under the rotation for {MAX_PASSES} passes; "
                                    "run it again (both KEKs stay in the keyring)")
            if stale == 0:
                time.sleep(min(1.0, grace_s))
        unreadable = unreadable_with_current_only(items, keyring.current_alone(), context, batch_size)
        if unreadable:
            raise RotationError(f"{unreadable} sealed values do not unseal with the new KEK alone; "
                                "the old KEKs stay in the keyring")
        hook("verified", report)
        report.retired = keyring.retire()
    log.info("KEK rotated: %d re-sealed, %d retired", report.resealed, report.retired)
    return report
