"""Starting and stopping the nodes of a ``qkms init`` directory as child processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import httpx

from adapters.etsi014_client import Etsi014Client, Etsi014Error

# Node logs name clients, certificates and key_IDs: not for every local user.
LOG_FILE_MODE = 0o640


@dataclass
class RunningNode:
    """One ``qkms serve`` child and where its output goes."""

    kme_id: str
    url: str
    process: subprocess.Popen
    log_path: Path


def sae_client(manifest: dict, sae_id: str, timeout_s: float = 30.0) -> Etsi014Client:
    """An ETSI 014 client for ``sae_id`` of a manifest, talking to its own node."""
    sae = manifest["saes"][sae_id]
    return Etsi014Client(manifest["nodes"][sae["node"]]["url"], sae["cert"], sae["key"], manifest["ca"],
                         timeout_s=timeout_s)


def wait_for_keys(master: Etsi014Client, slave_sae: str, count: int, timeout_s: float) -> dict:
    """Poll ETSI status until ``count`` keys could go to ``slave_sae``; returns that status."""
    deadline = time.monotonic() + timeout_s
    status: dict = {}
    failure = ""
    while True:
        try:
            status = master.status(slave_sae)
            failure = ""
            if status["stored_key_count"] >= count:
                return status
        except (Etsi014Error, httpx.HTTPError) as exc:
            failure = f"; the last status request failed: {type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {status.get('stored_key_count', 0)} keys towards {slave_sae} "
                               f"after {timeout_s:.0f}s{failure}")
        time.sleep(0.5)


def load_manifest(directory: Path) -> dict:
    """The manifest written by ``qkms init``."""
    return json.loads((directory / "manifest.json").read_text())


def open_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, readable by its owner and group only (mode
    LOG_FILE_MODE, also when the file was there before with a wider one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE)
    os.fchmod(fd, LOG_FILE_MODE)
    return os.fdopen(fd, "ab")


def start_node(kme_id: str, entry: dict, log_dir: Path) -> RunningNode:
    log_path = log_dir / f"{kme_id}.log"
    with open_log(log_path) as log:
        process = subprocess.Popen([sys.executable, "-m", "qkms", "serve", "--config", entry["config"]],
                                   stdout=log, stderr=subprocess.STDOUT)
    return RunningNode(kme_id, entry["url"], process, log_path)


def start_mock_device(config: Path | str, log_path: Path, faults: tuple[str, ...] = ()) -> subprocess.Popen:
    """A ``qkms mock-device`` child (docs/devices.md), its output appended to ``log_path``."""
    with open_log(log_path) as log:
        return subprocess.Popen([sys.executable, "-m", "qkms", "mock-device", "--config", str(config),
                                 *(arg for fault in faults for arg in ("--fault", fault))],
                                stdout=log, stderr=subprocess.STDOUT)


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Wait until something accepts TCP connections on host:port (RuntimeError if
    ``process`` exits first, TimeoutError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def stop_process(process: subprocess.Popen, timeout_s: float = 20) -> int:
    """SIGTERM, then SIGKILL if it does not exit; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


#: How long a starting node may take to listen. It returns as soon as the node does; a
#: node checks its link sources and starts its Redis first, which on a loaded 2-core
#: machine took over 30 s (a demo failed so while four test suites ran beside it).
NODE_START_TIMEOUT_S = 120


def wait_listening(node: RunningNode, timeout_s: float = NODE_START_TIMEOUT_S) -> None:
    """Wait until the node accepts TCP connections (its workers then start serving)."""
    address = urlparse(node.url)
    try:
        wait_for_port(address.hostname, address.port, timeout_s, node.process)
    except (RuntimeError, TimeoutError) as exc:
        raise type(exc)(f"node {node.kme_id}: {exc}; see {node.log_path}") from None


def start_all(directory: Path) -> list[RunningNode]:
    """Start every mock QKD device and every node of the directory and wait until all
    listen (a device is listed as a RunningNode named after it)."""
    manifest = load_manifest(directory)
    log_dir = directory / "logs"
    log_dir.mkdir(exist_ok=True, mode=0o750)
    devices = [entry for pair in manifest.get("mock_devices", {}).values() for entry in pair.values()]
    logs = {entry["name"]: log_dir / f"{entry['name']}.log" for entry in devices}
    started = [RunningNode(entry["name"], entry["url"], start_mock_device(entry["config"], logs[entry["name"]]),
                           logs[entry["name"]]) for entry in devices]
    started += [start_node(kme_id, entry, log_dir) for kme_id, entry in manifest["nodes"].items()]
    try:
        for running in started:
            wait_listening(running)
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(nodes: list[RunningNode], timeout_s: float = 30) -> None:
    """SIGTERM every node, then SIGKILL whatever is still running."""
    for node in nodes:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for node in nodes:
        try:
            node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
