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
import weakref
from pathlib import Path

from kms.config import AuditConfig

AUDIT_FILE_MODE = 0o640
AUDIT_LOGGER = "qkms.audit"


def _open_append(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, AUDIT_FILE_MODE)
    os.fchmod(fd, AUDIT_FILE_MODE)
    return fd


#: Every handler of this process, so that a forked child lets go of its parent's files.
_HANDLERS: weakref.WeakSet[SharedRotatingFileHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handler in list(_HANDLERS):
        handler._forget_parent_files()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _status_if_same(fd: int, path: Path) -> os.stat_result | None:
    """The status of ``fd`` if it is the file now at ``path``, else None."""
    try:
        status = os.fstat(fd)
        return status if status.st_ino == os.stat(path).st_ino else None
    except FileNotFoundError:
        return None


class SharedRotatingFileHandler(logging.Handler):
    """Appends each record as one line to ``path``, rotating it past ``max_bytes`` and
    keeping ``backups`` older files, safely across processes (see the module docs)."""

    def __init__(self, path: Path, max_bytes: int, backups: int):
        super().__init__(logging.INFO)
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._local = threading.Lock()
        _HANDLERS.add(self)

    def _forget_parent_files(self) -> None:
        """In a child, at the fork: close the parent's descriptors (a copy of the lock
        file's would share the parent's flock, and would keep it held if the parent died
        holding it) and drop a thread lock another parent thread may have held."""
        for inherited in (self._fd, self._lock_fd):
            if inherited is not None:
                os.close(inherited)
        self._fd = self._lock_fd = None
        self._local = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode()
            with self._local:
                self._append(line)
        except Exception:  # a failing audit write must not fail the request; logging reports it
            self.handleError(record)

    def _append(self, line: bytes) -> None:
        lock = self._locked()
        try:
            fd, size = self._current_file()
            if size + len(line) > self.max_bytes and size > 0:
                self._rotate()
                fd, _ = self._current_file()
            os.write(fd, line)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _locked(self) -> int:
        """This process's descriptor of the lock file now at ``lock_path``, flocked.

        Both descriptors stay open between writes (a forked child closes its copies,
        :meth:`_forget_parent_files`); the lock file is opened again if it was deleted or
        replaced, so that every process locks the same one, and its directory is made
        again if it was removed."""
        while True:
            if self._lock_fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
                self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, AUDIT_FILE_MODE)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            if _status_if_same(self._lock_fd, self.lock_path) is not None:
                return self._lock_fd
            os.close(self._lock_fd)  # releases the flock on a lock file no one else sees
            self._lock_fd = None

    def _current_file(self) -> tuple[int, int]:
        """This process's descriptor of the file now at ``path`` (opened again after
        another process rotated it) and that file's size."""
        if self._fd is not None:
            status = _status_if_same(self._fd, self.path)
            if status is not None:
                return self._fd, status.st_size
            os.close(self._fd)
        self._fd = _open_append(self.path)
        return self._fd, os.fstat(self._fd).st_size

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
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None
        super().close()


def install_audit_log(settings: AuditConfig) -> SharedRotatingFileHandler:
    """Send this process's audit entries to the node's audit file and nowhere else (once
    per process): the trail stays out of the server log, which would otherwise grow by
    a line per key."""
    logger = logging.getLogger(AUDIT_LOGGER)
    for handler in logger.handlers:
        if isinstance(handler, SharedRotatingFileHandler) and handler.path == Path(settings.file):
            return handler
    handler = SharedRotatingFileHandler(Path(settings.file), settings.max_bytes, settings.backups)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def audit_files(path: Path) -> list[Path]:
    """The audit file and its rotated predecessors, oldest first."""
    rotated = sorted(path.parent.glob(path.name + ".[0-9]*"), key=lambda p: -int(p.name.rsplit(".", 1)[1]))
    return [*rotated, *([path] if path.exists() else [])]
