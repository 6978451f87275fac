"""``qkms connect`` agents as real processes for tests, watched through their status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.connectors.channel import STATUS_PATH, ChannelClient, SaeCredentials
from adapters.connectors.errors import ConnectorError
from qkms.layout import free_port
from qkms.runner import stop_process
from tests.support.conditions import wait_until


class AgentProcess:
    """One agent of a pair; ``status()`` asks its channel port, as a monitor would."""

    def __init__(self, manifest: dict, root: Path, application: str, role: str, sae: str, peer_sae: str,
                 tunnel: str, *extra: str, peer_port: int | None = None, interval_s: float = 60,
                 grace_s: float = 30, retry_s: float = 1):
        self.sae = sae
        self.port = free_port()
        self.log_path = root / f"agent-{sae}.log"
        self.credentials = SaeCredentials(Path(manifest["saes"][sae]["cert"]), Path(manifest["saes"][sae]["key"]),
                                          Path(manifest["ca"]))
        self.argv = [sys.executable, "-m", "qkms", "connect", application, "--role", role, "--tunnel", tunnel,
                     "--manifest", str(root), "--sae", sae, "--peer-sae", peer_sae,
                     "--listen", f"127.0.0.1:{self.port}", "--interval-s", str(interval_s),
                     "--grace-s", str(grace_s), "--retry-s", str(retry_s), *extra]
        if peer_port is not None:
            self.argv += ["--peer-agent", f"127.0.0.1:{peer_port}"]
        self.process: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        wait_until(lambda: self.status() or self.process.poll() is not None, f"agent {self.sae} serving", 30)
        if self.process.poll() is not None:
            raise RuntimeError(f"agent {self.sae} exited: {self.log_text()[-1500:]}")
        return self

    def status(self) -> dict | None:
        try:
            return ChannelClient(f"127.0.0.1:{self.port}", self.credentials, self.sae, timeout_s=5).get(STATUS_PATH)
        except ConnectorError:
            return None

    def wait_for(self, timeout_s: float, what: str, **expected) -> dict:
        """Wait until the status has ``expected`` values (``sequence`` means at least)."""
        def matches():
            status = self.status()
            if status and all(status[k] >= v if k == "sequence" else status[k] == v for k, v in expected.items()):
                return status
            return None
        try:
            return wait_until(matches, f"agent {self.sae}: {what}", timeout_s, poll_s=0.1)
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc}; last status {self.status()}; log:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        return stop_process(self.process, timeout_s=20) if self.process else 0


def agent_pair(net, application: str, tunnel: str, initiator: tuple[str, list[str]],
               responder: tuple[str, list[str]], **timing) -> tuple[AgentProcess, AgentProcess]:
    """Start the responder, then the initiator pointed at it. Stop both with ``stop_pair``."""
    (sae_i, extra_i), (sae_r, extra_r) = initiator, responder
    resp = AgentProcess(net.manifest, net.root, application, "responder", sae_r, sae_i, tunnel, *extra_r, **timing)
    init = AgentProcess(net.manifest, net.root, application, "initiator", sae_i, sae_r, tunnel, *extra_i,
                        peer_port=resp.port, **timing)
    try:
        resp.start()
        init.start()
    except BaseException:
        stop_pair(init, resp)
        raise
    return init, resp


def stop_pair(*agents: AgentProcess) -> None:
    for agent in agents:
        agent.stop()
