"""Private network namespaces for tests of real VPN software: wireguard-go devices, a
tunnel between two namespaces, charon daemons. Everything started is stopped and every
namespace deleted (also when a test fails). Where the machine cannot make namespaces,
the test skips and says why."""

from __future__ import annotations

import base64
import functools
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qkms.runner import stop_process
from tests.support.conditions import wait_until

_names = itertools.count()


@functools.cache
def _namespace_problem() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (this test runs as an unprivileged user)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed (make test installs it)"
    name = f"qkms-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"this machine cannot create network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def require_namespaces(*commands: str) -> None:
    """Skip, with the reason, unless namespaces can be made and ``commands`` exist."""
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    missing = [c for c in commands if shutil.which(c) is None and not Path(c).exists()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (make test installs them from Debian packages)")


def run(*argv: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, timeout=30)
    if result.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode()


class Namespace:
    """A named network namespace with loopback up."""

    def __init__(self):
        self.name = f"qkms{os.getpid() % 100000}n{next(_names)}"
        run("ip", "netns", "add", self.name)
        run("ip", "-n", self.name, "link", "set", "lo", "up")

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def wg_keypair() -> tuple[bytes, str]:
    private = run("wg", "genkey").strip().encode()
    return private, run("wg", "pubkey", stdin=private).strip()


class WireGuardDevice:
    """A wireguard-go device alone in its own namespace."""

    def __init__(self, log_dir: Path, namespace: Namespace | None = None):
        self.namespace = namespace or Namespace()
        self.name = f"qwg{os.getpid() % 100000}d{next(_names)}"
        self.log_path = log_dir / f"{self.name}.log"
        self.process: subprocess.Popen | None = None
        self.public_key = ""

    def start(self) -> "WireGuardDevice":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.namespace.argv("wireguard-go", "-f", self.name),
                                            stdout=log, stderr=subprocess.STDOUT)
        socket_path = Path("/var/run/wireguard") / f"{self.name}.sock"
        wait_until(lambda: socket_path.exists() or self.process.poll() is not None, "wireguard-go's socket", 10)
        if self.process.poll() is not None:
            raise RuntimeError(f"wireguard-go exited: {self.log_path.read_text(errors='replace')[-500:]}")
        private, self.public_key = wg_keypair()
        run("wg", "set", self.name, "private-key", "/dev/stdin", stdin=private + b"\n")
        return self

    def add_peer(self, public_key: str | None = None, allowed_ips: str = "10.213.255.1/32",
                 endpoint: str | None = None) -> str:
        public_key = public_key or wg_keypair()[1]
        extra = ["endpoint", endpoint] if endpoint else []
        run("wg", "set", self.name, "peer", public_key, "allowed-ips", allowed_ips, *extra)
        return public_key

    def preshared_key(self, peer: str) -> bytes | None:
        for line in run("wg", "show", self.name, "preshared-keys").splitlines():
            public_key, _, psk = line.partition("\t")
            if public_key == peer:
                return None if psk == "(none)" else base64.b64decode(psk)
        return None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=5)
        self.namespace.delete()


ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""

PROBE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    s.sendto(b"qkms-probe", (sys.argv[1], int(sys.argv[2])))
    s.settimeout(0.25)
    try:
        if s.recvfrom(64)[0] == b"qkms-probe":
            sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
"""


class WireGuardTunnel:
    """Two namespaces joined by a veth pair, a wireguard-go device in each, peered with
    each other (no PSK yet), and a UDP echo server behind side B's tunnel address."""

    OUTER = ("10.213.0.1", "10.213.0.2")
    INNER = ("10.213.1.1", "10.213.1.2")
    ECHO_PORT = 7000

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.a = WireGuardDevice(log_dir)
        self.b = WireGuardDevice(log_dir)
        self.echo: subprocess.Popen | None = None

    def start(self) -> "WireGuardTunnel":
        veth_a, veth_b = f"{self.a.name}v", f"{self.b.name}v"
        run("ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        for device, veth, outer, inner in ((self.a, veth_a, self.OUTER[0], self.INNER[0]),
                                           (self.b, veth_b, self.OUTER[1], self.INNER[1])):
            ns = device.namespace.name
            run("ip", "link", "set", veth, "netns", ns)
            run("ip", "-n", ns, "addr", "add", f"{outer}/24", "dev", veth)
            run("ip", "-n", ns, "link", "set", veth, "up")
            device.start()
            run("ip", "-n", ns, "addr", "add", f"{inner}/24", "dev", device.name)
            run("ip", "-n", ns, "link", "set", device.name, "up")
            run("wg", "set", device.name, "listen-port", "51820")
        self.a.add_peer(self.b.public_key, f"{self.INNER[1]}/32", f"{self.OUTER[1]}:51820")
        self.b.add_peer(self.a.public_key, f"{self.INNER[0]}/32", f"{self.OUTER[0]}:51820")
        with open(self.log_dir / "echo.log", "ab") as log:
            self.echo = subprocess.Popen(self.b.namespace.argv(sys.executable, "-c", ECHO_SERVER, self.INNER[1],
                                                               str(self.ECHO_PORT)), stdout=log, stderr=log)
        return self

    def passes_traffic(self, timeout_s: float) -> bool:
        """True if a UDP datagram from A reaches B's echo server and comes back in time."""
        probe = subprocess.run(self.a.namespace.argv(sys.executable, "-c", PROBE, self.INNER[1],
                                                     str(self.ECHO_PORT), str(timeout_s)),
                               capture_output=True, timeout=timeout_s + 30)
        return probe.returncode == 0

    def stop(self) -> None:
        if self.echo is not None:
            stop_process(self.echo, timeout_s=5)
        self.a.stop()
        self.b.stop()
