"""The node's audit file: JSON lines from every process of the node, rotated by size.

Every web worker and the link manager append to the same file (``audit.file``).
Several processes may not rotate one file with a plain RotatingFileHandler (each
would rename the others' file away), so each write takes an exclusive ``flock`` on a
lock file beside it (``<file>.lock``, which is never rotated), reopens the file if
another process rotated it meanwhile, rotates it itself when the line would pass
``audit.max_bytes`` (``<file>.1`` ... ``<file>.<backups>``), and appends the line with
one ``write``. Files are created mode 0640 (owner and group: they name clients and
key_IDs, never keys).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

from kms.config import AuditConfig

AUDIT_FILE_MODE = 0o640
AUDIT_LOGGER = "qkms.audit"


def _open_append(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, AUDIT_FILE_MODE)
    os.fchmod(fd, AUDIT_FILE_MODE)
    return fd


class SharedRotatingFileHandler(logging.Handler):
    """Appends each record as one line to ``path``, rotating it past ``max_bytes`` and
    keeping ``backups`` older files, safely across processes (see the module docs)."""

    def __init__(self, path: Path, max_bytes: int, backups: int):
        super().__init__(logging.INFO)
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd: int | None = None
        self._fd_pid: int | None = None
        self._local = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode()
            with self._local:
                self._append(line)
        except Exception:  # a failing audit write must not fail the request; logging reports it
            self.handleError(record)

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                       AUDIT_FILE_MODE)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fd = self._current_fd()
            if os.fstat(fd).st_size + len(line) > self.max_bytes and os.fstat(fd).st_size > 0:
                self._rotate()
                fd = self._current_fd()
            os.write(fd, line)
        finally:
            os.close(lock)  # releases the flock

    def _current_fd(self) -> int:
        """This process's descriptor of the file now at ``path`` (reopened after a fork or
        after another process rotated it)."""
        try:
            same = self._fd is not None and self._fd_pid == os.getpid() and \
                os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            if self._fd is not None and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd, self._fd_pid = _open_append(self.path), os.getpid()
        return self._fd

    def _rotate(self) -> None:
        if self.backups == 0:
            os.truncate(self.path, 0)
            return
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        with self._local:
            if self._fd is not None and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd = None
        super().close()


def install_audit_log(settings: AuditConfig) -> SharedRotatingFileHandler:
    """Send this process's audit entries to the node's audit file (once per process)."""
    logger = logging.getLogger(AUDIT_LOGGER)
    for handler in logger.handlers:
        if isinstance(handler, SharedRotatingFileHandler) and handler.path == Path(settings.file):
            return handler
    handler = SharedRotatingFileHandler(Path(settings.file), settings.max_bytes, settings.backups)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def audit_files(path: Path) -> list[Path]:
    """The audit file and its rotated predecessors, oldest first."""
    rotated = sorted(path.parent.glob(path.name + ".[0-9]*"), key=lambda p: -int(p.name.rsplit(".", 1)[1]))
    return [*rotated, *([path] if path.exists() else [])]
