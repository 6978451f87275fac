"""``make demo``: a throwaway three-node network with simulated QKD links, real ETSI 014
exchanges over mutual TLS, and a report.

Prints key IDs, sizes, routes, provenance and whether master and slave hold the same
bytes; never key bytes or digests of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.etsi014_client import Etsi014Client, Etsi014Error
from qkms.layout import DEMO_LINK_SOURCE, LinkPlan, NodePlan, free_port, write_layout
from qkms.link_status import fetch_link_state, link_table
from qkms.runner import sae_client, start_all, stop_all, wait_for_keys

NODES = {"A": ("sae-a",), "B": ("sae-b",), "C": ("sae-c",)}
LINKS = (("A", "B"), ("B", "C"))


def _wait_for_keys(master: Etsi014Client, slave: str, count: int, console: Console) -> dict:
    with console.status(f"waiting for the simulated QKD links to fill the pools towards {slave} ..."):
        return wait_for_keys(master, slave, count, timeout_s=180)


def run_demo(directory: Path, console: Console) -> bool:
    """Create ``directory`` afresh, run the network, exchange keys, report; True if all matched."""
    shutil.rmtree(directory, ignore_errors=True)
    plans = [NodePlan(kme_id, saes, free_port()) for kme_id, saes in NODES.items()]
    links = [LinkPlan(f"{a}-{b}", (a, b), dict(DEMO_LINK_SOURCE)) for a, b in LINKS]
    manifest = write_layout(directory, plans, links).to_dict()
    console.print(f"[bold]wrote[/] a CA, 3 nodes (A-B-C), 2 simulated QKD links and 3 SAEs under {directory}")
    nodes = start_all(directory)
    try:
        console.print("nodes up: " + ", ".join(f"{n.kme_id} {n.url}" for n in nodes) + f" (logs in {directory / 'logs'})")
        with sae_client(manifest, "sae-a") as sae_a, sae_client(manifest, "sae-b") as sae_b, \
                sae_client(manifest, "sae-c") as sae_c:
            status = _wait_for_keys(sae_a, "sae-c", 8, console)
            console.print(link_table(fetch_link_state(manifest, "A")))
            console.print(f"status sae-a -> sae-c: source {status['source_KME_ID']}, target "
                          f"{status['target_KME_ID']}, route {status['status_extension']['qkms_source']['route']}, "
                          f"{status['stored_key_count']} keys of {status['key_size']} bits available")
            ok = _exchange(sae_a, sae_b, "sae-b", console) & _exchange(sae_a, sae_c, "sae-c", console)
            return ok
    finally:
        stop_all(nodes)
        console.print("all nodes stopped (each with its embedded Redis and link manager)")


def _exchange(master: Etsi014Client, slave: Etsi014Client, slave_id: str, console: Console) -> bool:
    sent = master.enc_keys(slave_id, number=3, size_bits=256)
    received = slave.dec_keys("sae-a", [key.key_id for key in sent])
    table = Table("key_ID", "bits", "route", "sources", "relay", "same bytes at both SAEs",
                  title=f"sae-a enc_keys  ->  {slave_id} dec_keys")
    all_match = True
    for mine, theirs in zip(sent, received):
        same = mine.key_id == theirs.key_id and mine.material == theirs.material
        all_match &= same
        provenance = mine.extension.get("qkms_provenance", {})
        relayed = "trusted-node-relay" in provenance.get("algorithms", [])
        table.add_row(mine.key_id, str(len(mine.material) * 8), "-".join(provenance.get("route", [])),
                      ", ".join(provenance.get("sources", [])), "one-time pad per hop" if relayed else "-",
                      "yes" if same else "NO")
    console.print(table)
    try:
        slave.dec_keys("sae-a", [sent[0].key_id])
        console.print("[red]a key was delivered twice[/]")
        return False
    except Etsi014Error as exc:
        console.print(f"fetching {sent[0].key_id} again is refused: {exc.status} {exc.body['message']!r}")
    return all_match
