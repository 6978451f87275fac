"""Debian's HAProxy as a TCP load balancer on loopback for tests: TLS passes through to
the backends (the replicas terminate mutual TLS themselves), a dead backend is taken
out by HAProxy's own health checks. Always stopped by ``stop()``."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from qkms.runner import open_log, stop_process, wait_for_port

#: Health checks every 200 ms; one failure takes a backend out, one success puts it back.
CONFIG = """global
    maxconn 256
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend etsi
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
{servers}
"""


def haproxy_binary() -> str:
    """Debian's haproxy (``make system-deps`` installs it); skip, saying why, if absent."""
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if path is None:
        pytest.skip("haproxy is not installed on this machine (make system-deps installs it with apt-get)")
    return path


@dataclass
class LoadBalancer:
    """One haproxy process in the foreground, balancing ``backends`` (loopback ports)."""

    port: int
    backends: list[int]
    directory: Path
    process: subprocess.Popen | None = None

    def start(self) -> "LoadBalancer":
        binary = haproxy_binary()
        servers = "\n".join(f"    server r{i} 127.0.0.1:{port} check inter 200ms fall 1 rise 1"
                            for i, port in enumerate(self.backends))
        config = self.directory / "haproxy.cfg"
        config.write_text(CONFIG.format(port=self.port, servers=servers))
        with open_log(self.directory / "haproxy.log") as log:
            self.process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port("127.0.0.1", self.port, 30, self.process)
        return self

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=10)
