"""``make demo``: a throwaway four-node network, real ETSI 014 exchanges over mutual TLS,
and a report. Its links show the link policies side by side: A-B a simulated QKD
link, B-C hybrid (QKD and ML-KEM combined with CatKDF), C-D post-quantum only (ML-KEM
signed with ML-DSA). ``make demo-devices`` (``--devices``) feeds link A-B from a pair of
mock QKD devices instead, relays over the chain of device-fed, hybrid and ML-KEM links,
and shows a device fault degrading link A-B and the link recovering.

Prints key IDs, sizes, routes, provenance (each hop's material) and whether master
and slave hold the same bytes; never key bytes or digests of them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.etsi014_client import Etsi014Client, Etsi014Error
from qkms.demo_dashboard import DEMO_DASHBOARD_NODE, dashboard_note, serve_until_interrupted
from qkms.cli import link_plan
from qkms.device_layout import change_mock_faults
from qkms.layout import DEMO_LINK_SOURCE, LinkPlan, NodePlan, free_port, write_layout
from qkms.link_status import fetch_link_state, link_table
from qkms.runner import sae_client, start_all, stop_all, wait_for_keys

NODES = {"A": ("sae-a",), "B": ("sae-b",), "C": ("sae-c",), "D": ("sae-d",)}
LINKS = (("A", "B", "qkd-only"), ("B", "C", "hybrid"), ("C", "D", "pqc-only"))
#: The device-fed demo's link settings: a fault shows within a second, recovery within ten.
DEMO_DEVICE_SETTINGS = {"poll_interval_s": 0.5, "probe_interval_s": 1.0, "health_window_s": 6,
                        "breaker_failures": 3, "breaker_cooldown_s": 3, "backoff_max_s": 2}


def _wait_for_keys(master: Etsi014Client, slave: str, count: int, console: Console) -> dict:
    with console.status(f"waiting for the links to fill the pools towards {slave} ..."):
        return wait_for_keys(master, slave, count, timeout_s=240)


def _plans(devices: bool) -> tuple[list[NodePlan], list[LinkPlan]]:
    plans = [NodePlan(kme_id, saes, free_port()) for kme_id, saes in NODES.items()]
    urls = {plan.kme_id: f"https://127.0.0.1:{plan.port}" for plan in plans}
    links = [LinkPlan(f"{a}-{b}", (a, b), dict(DEMO_LINK_SOURCE), policy) for a, b, policy in LINKS]
    if devices:
        links[0] = link_plan("A-B", ("A", "B"), "mock-device", DEMO_LINK_SOURCE, urls,
                             source_settings=DEMO_DEVICE_SETTINGS)
    return plans, links


def run_demo(directory: Path, console: Console, keep_running: bool = False, devices: bool = False) -> bool:
    """Create ``directory`` afresh, run the network, exchange keys, report; True if all
    matched. With ``devices`` link A-B is fed by a pair of mock devices and a device
    fault is shown. With ``keep_running`` the network then stays up, its dashboard
    served on loopback, until Ctrl-C."""
    shutil.rmtree(directory, ignore_errors=True)
    plans, links = _plans(devices)
    manifest = write_layout(directory, plans, links).to_dict()
    a_b = "A-B fed by a pair of mock QKD devices (ETSI 014)" if devices else "A-B simulated QKD"
    console.print(f"[bold]wrote[/] a CA, 4 nodes (A-B-C-D), 3 links ({a_b}, B-C hybrid QKD+ML-KEM, "
                  f"C-D ML-KEM only, with ML-DSA keys pinned per link) and 4 SAEs under {directory}")
    nodes = start_all(directory)
    try:
        console.print("up: " + ", ".join(f"{n.kme_id} {n.url}" for n in nodes) + f" (logs in {directory / 'logs'})")
        with sae_client(manifest, "sae-a") as sae_a, sae_client(manifest, "sae-b") as sae_b, \
                sae_client(manifest, "sae-c") as sae_c, sae_client(manifest, "sae-d") as sae_d:
            status = _wait_for_keys(sae_a, "sae-d", 8, console)
            console.print(link_table(fetch_link_state(manifest, "B")))
            console.print(f"status sae-a -> sae-d: source {status['source_KME_ID']}, target "
                          f"{status['target_KME_ID']}, route {status['status_extension']['qkms_source']['route']}, "
                          f"{status['stored_key_count']} keys of {status['key_size']} bits available")
            ok = all([_exchange(sae_a, sae_b, "sae-b", console), _exchange(sae_a, sae_c, "sae-c", console),
                      _exchange(sae_a, sae_d, "sae-d", console)])
            _demand_qkd(sae_a, console)
            if devices:
                ok &= _device_fault(directory, manifest, sae_a, sae_b, console)
        console.print(dashboard_note(manifest, DEMO_DASHBOARD_NODE), soft_wrap=True)
        if keep_running:
            serve_until_interrupted(manifest, DEMO_DASHBOARD_NODE, console,
                                    still_running=lambda: all(n.process.poll() is None for n in nodes))
        else:
            console.print("`make demo-dashboard` (qkms demo --keep-running) leaves the network running with "
                          "its dashboard open to a local browser")
        return ok
    finally:
        stop_all(nodes)
        console.print("all nodes stopped (each with its embedded Redis and link manager)"
                      + (" and both mock devices" if devices else ""))


def _half(manifest: dict, owner: str):
    return next(h for h in fetch_link_state(manifest, owner).halves if h.link_id == "A-B" and h.owner == owner)


#: How long the device demo waits for link A-B to be up again once the device is healed.
RECOVERY_TIMEOUT_S = 240


def _await_state(manifest: dict, wanted, what: str, console: Console, timeout_s: float = 90):
    """Poll A's half of A-B until ``wanted(half)``; returns (half, seconds waited)."""
    started = time.monotonic()
    with console.status(what):
        while True:
            half = _half(manifest, "A")
            if wanted(half) or time.monotonic() - started > timeout_s:
                return half, time.monotonic() - started
            time.sleep(0.2)


def _device_fault(directory: Path, manifest: dict, sae_a: Etsi014Client, sae_b: Etsi014Client,
                  console: Console) -> bool:
    """Tell device A of link A-B to answer 503, watch the link degrade, heal it, watch it recover."""
    device = manifest["mock_devices"]["A-B"]["A"]
    change_mock_faults(directory, device, ["unavailable"])
    console.print(f"[bold]fault[/]: mock device {device['name']} now answers every ETSI request with 503")
    half, seconds = _await_state(manifest, lambda h: h.state != "up", "waiting for A to notice ...", console)
    console.print(f"A reports link A-B [bold]{half.state}[/] after {seconds:.1f} s: {half.reason}")
    console.print(link_table(fetch_link_state(manifest, "A")))
    change_mock_faults(directory, device, clear="all")
    # Up means a delivery since the fault and no problem for the health window
    # (DEMO_DEVICE_SETTINGS), after the breaker's cooldown if it had opened.
    half, seconds = _await_state(manifest, lambda h: h.state == "up", "device healed; waiting for recovery ...",
                                 console, timeout_s=RECOVERY_TIMEOUT_S)
    console.print(f"device healed: link A-B [bold]{half.state}[/] again after {seconds:.1f} s"
                  + ("" if half.state == "up" else f": {half.reason}"))
    return half.state == "up" and _exchange(sae_a, sae_b, "sae-b", console)


def _exchange(master: Etsi014Client, slave: Etsi014Client, slave_id: str, console: Console) -> bool:
    sent = master.enc_keys(slave_id, number=3, size_bits=256)
    received = slave.dec_keys("sae-a", [key.key_id for key in sent])
    table = Table("key_ID", "bits", "route", "hops (material: sources)", "relay", "same bytes at both SAEs",
                  title=f"sae-a enc_keys  ->  {slave_id} dec_keys")
    all_match = True
    for mine, theirs in zip(sent, received):
        same = mine.key_id == theirs.key_id and mine.material == theirs.material
        all_match &= same
        provenance = mine.extension.get("qkms_provenance", {})
        relayed = "trusted-node-relay" in provenance.get("algorithms", [])
        hops = "\n".join(f"{h['link']} {h['material']}: {'+'.join(h['sources'])}" for h in provenance.get("hops", []))
        table.add_row(mine.key_id, str(len(mine.material) * 8), "-".join(provenance.get("route", [])),
                      hops, "one-time pad per hop" if relayed else "-", "yes" if same else "NO")
    console.print(table)
    try:
        slave.dec_keys("sae-a", [sent[0].key_id])
        console.print("[red]a key was delivered twice[/]")
        return False
    except Etsi014Error as exc:
        console.print(f"fetching {sent[0].key_id} again is refused: {exc.status} {exc.body['message']!r}")
    return all_match


def _demand_qkd(master: Etsi014Client, console: Console) -> None:
    """An SAE that demands QKD material on every hop cannot have a key over the ML-KEM-only link."""
    try:
        master.enc_keys("sae-d", extension_mandatory=[{"qkms_require_qkd": True}])
        console.print("[red]a key demanding QKD crossed the ML-KEM-only link[/]")
    except Etsi014Error as exc:
        console.print(f"QKD on every hop to sae-d (C-D is ML-KEM only): {exc.status} {exc.body['message']!r}")
