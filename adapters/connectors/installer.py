"""The one extension point of connectors: putting a key into an application.

Every installer passes the contract suite tests/adapters/connectors/test_installer_contract.py.
Installers are chosen by name from ``INSTALLERS`` (the ``qkms connect`` subcommands).
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from adapters.connectors.errors import ConnectorError
from kms.pki.files import write_atomic

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class KeyInstaller(ABC):
    """Installs keys for one tunnel (or session pair) of one application."""

    #: Names the application in the key's HKDF context (adapters.connectors.derive).
    application: ClassVar[str]
    #: Length in bytes of the keys ``install`` takes (a derived key of this length).
    key_bytes: int = 32

    @abstractmethod
    def install(self, key: bytes, key_id: str) -> None:
        """Make ``key`` (``key_bytes`` long) the key the application uses from now on,
        known to it under ``key_id``. Raises ConnectorError if it could not (the agent
        then calls ``fail_closed``); never puts key material into an error or a log."""

    @abstractmethod
    def fail_closed(self) -> None:
        """Replace whatever key the application holds by fresh random bytes, and end what
        an earlier key keyed where the application allows it, so no traffic passes on a
        stale or missing key. Raises ConnectorError if even that failed."""

    def close(self) -> None:
        """Release connections to the application (the installed key stays)."""

    def check_key(self, key: bytes) -> None:
        """ConnectorError unless ``key`` has the length this installer takes."""
        if len(key) != self.key_bytes:
            raise ConnectorError(f"{self.application} takes {self.key_bytes}-byte keys, got {len(key)} bytes")

    def random_key(self) -> bytes:
        return secrets.token_bytes(self.key_bytes)


def private_directory(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created 0700; an existing one
    that others may enter is refused rather than silently changed)."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConnectorError(f"cannot create key directory {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConnectorError(f"key directory {path} has mode {mode:o}; keys need a 0700 directory")
    return path


def write_private(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to a 0600 file in a 0700 directory."""
    private_directory(path.parent)
    try:
        write_atomic(path, data, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise ConnectorError(f"cannot write key file {path}: {exc.strerror}") from None


def run_command(argv: Sequence[str], stdin: bytes | None = None, env: dict[str, str] | None = None,
                timeout_s: float = 30.0) -> str:
    """Run a helper command (secrets only ever on stdin); its stdout, or ConnectorError
    with its exit status and the end of its stderr."""
    try:
        result = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout_s,
                                env={**os.environ, **(env or {})})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConnectorError(f"{argv[0]} could not run: {exc}") from None
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip().splitlines()
        raise ConnectorError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} exited with {result.returncode}: "
                             f"{stderr[-1] if stderr else 'no message'}")
    return result.stdout.decode(errors="replace")
