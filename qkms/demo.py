"""``make demo``: a throwaway node, a real ETSI 014 exchange over mutual TLS, a report.

Prints key IDs, sizes, provenance and whether master and slave hold the same bytes;
never key bytes or digests of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from adapters.etsi014_client import Etsi014Client, Etsi014Error
from qkms.layout import NodePlan, free_port, write_layout


def _start_node(config_path: Path, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "qkms", "serve", "--config", str(config_path)],
                                stdout=log, stderr=subprocess.STDOUT)


def _wait_ready(client: Etsi014Client, slave: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.status(slave)
        except (Etsi014Error, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _client(manifest: dict, sae_id: str) -> Etsi014Client:
    sae = manifest["saes"][sae_id]
    return Etsi014Client(manifest["nodes"][sae["node"]]["url"], sae["cert"], sae["key"], manifest["ca"])


def run_single_node_demo(directory: Path, console: Console) -> bool:
    """Create ``directory`` afresh, run one node, exchange keys, report; True if all matched."""
    shutil.rmtree(directory, ignore_errors=True)
    manifest = write_layout(directory, [NodePlan("KME-1", ("sae-1", "sae-2"), free_port())]).to_dict()
    console.print(f"[bold]PKI, KEK and config written to[/] {directory} (CA {manifest['ca']})")
    node = _start_node(Path(manifest["nodes"]["KME-1"]["config"]), directory / "node.log")
    try:
        with _client(manifest, "sae-1") as master, _client(manifest, "sae-2") as slave:
            status = _wait_ready(master, "sae-2")
            console.print(f"node KME-1 up at {manifest['nodes']['KME-1']['url']} "
                          f"(mutual TLS, embedded Redis): status {json.dumps(status)}")
            return _exchange(master, slave, console)
    finally:
        node.terminate()
        node.wait(timeout=30)
        console.print("node stopped (embedded Redis shut down with it)")


def _exchange(master: Etsi014Client, slave: Etsi014Client, console: Console) -> bool:
    sent = master.enc_keys("sae-2", number=4, size_bits=256)
    received = slave.dec_keys("sae-1", [key.key_id for key in sent])
    table = Table("key_ID", "size (bits)", "provenance", "same bytes at both SAEs",
                  title="sae-1 enc_keys  ->  sae-2 dec_keys")
    all_match = True
    for mine, theirs in zip(sent, received):
        same = mine.key_id == theirs.key_id and mine.material == theirs.material
        all_match &= same
        provenance = mine.extension.get("qkms_provenance", {})
        table.add_row(mine.key_id, str(len(mine.material) * 8), ",".join(provenance.get("sources", [])),
                      "yes" if same else "NO")
    console.print(table)
    try:
        slave.dec_keys("sae-1", [sent[0].key_id])
        console.print("[red]a key was delivered twice[/]")
        all_match = False
    except Etsi014Error as exc:
        console.print(f"second dec_keys of the same key_ID refused: {exc.status} {exc.body['message']!r}")
    return all_match
