"""Real processes for tests: qkms nodes and redis-server, on loopback, always stopped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from qkms.layout import free_port  # noqa: F401 (tests import it from here)
from qkms.runner import NODE_START_TIMEOUT_S, open_log, stop_process, wait_for_port
from tests.support.conditions import wait_until


@dataclass
class NodeProcess:
    """A ``qkms serve`` subprocess whose stderr goes to ``log_path``."""

    config_path: Path
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout_s: float = NODE_START_TIMEOUT_S) -> "NodeProcess":
        log = open_log(self.log_path)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qkms", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        log.close()
        wait_for_port("127.0.0.1", self.port, timeout_s, self.process)
        return self

    def stop(self) -> int:
        return stop_process(self.process) if self.process else 0

    def kill9(self) -> None:
        """SIGKILL the node's master process (workers and embedded Redis follow)."""
        self.process.kill()
        self.process.wait()
        wait_until(lambda: not _port_open(self.port), f"port {self.port} to close (the workers to die)", 30)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class RedisServerProcess:
    """A separately started Debian ``redis-server`` on a loopback port."""

    port: int
    data_dir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServerProcess":
        self.process = subprocess.Popen(
            [external_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, f"redis-server to answer on port {self.port}", 60)
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"redis-server exited with {self.process.returncode} (port {self.port} taken?)")
        try:
            with redis.Redis.from_url(self.url) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)


def external_redis_binary() -> str:
    """The Debian redis-server (installed by ``make test``); skip with a reason if absent."""
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if path is None:
        pytest.skip("redis-server is not installed on this machine (make test installs it with apt-get)")
    return path




def child_pids(parent: int) -> list[int]:
    """The live (not zombie) children of process ``parent``, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(ppid) == parent and state != "Z":
            children.append(int(stat.parent.name))
    return children


def link_manager_pid(node_pid: int) -> int | None:
    """The pid of the ``qkms linkd`` child of a ``qkms serve`` process, if one runs."""
    for pid in child_pids(node_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"linkd" in argv and b"--check" not in argv:
            return pid
    return None


def is_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
