"""Benchmark: sustained key delivery across a network of real nodes (adjacent and 3-hop relay).

Starts a chain A-B-C-D of ``qkms serve`` processes whose links are the demo's simulated
QKD links (Toshiba 2013 preset, 25 km, real-time frames); for each route, A->B
(adjacent) then A->D (three hops), waits for the first keys, then lets ``--clients``
concurrent SAE pairs run enc_keys + dec_keys round trips for ``--duration`` seconds.
The link simulations keep running meanwhile (six link ends on the same cores), as they
would on a node, so delivery is sustained by the links' key rate, not by what the pools
held at the start.  Prints round trips per second overall and per 10 s window, failures
(503: pool empty), p50/p99 latency, link key material consumed per delivered key bit
(from the pools' usage counters) and the links' measured speedup and secret rate.

    .venv/bin/python benchmarks/bench_relay.py --clients 16 --duration 60
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.etsi014_client import Etsi014Error  # noqa: E402
from tests.support.network import LocalNetwork  # noqa: E402

from qkms.layout import DEMO_LINK_SOURCE  # noqa: E402

WINDOW_S = 10.0


def carved_bits(net: LocalNetwork) -> int:
    """Bits carved from every pool (QKD and PQC) of every link, by its senders."""
    return sum(net.pools(owner).usage_bits(pool, owner)["carved_bits"]
               for link in net.links for pool in (link.link_id, f"{link.link_id}#pqc") for owner in link.nodes)


def run_route(net: LocalNetwork, slave: str, clients: int, duration_s: float, size_bits: int) -> dict:
    """enc+dec round trips from sae-a to ``slave`` over ``clients`` threads for ``duration_s``."""
    done: list[tuple[float, float]] = []  # (finish time, latency)
    failures: dict[str, int] = {}
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + duration_s

    def worker() -> None:
        master, receiver = net.client("sae-a"), net.client(slave)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                (key,) = master.enc_keys(slave, number=1, size_bits=size_bits)
                receiver.dec_keys("sae-a", [key.key_id])
            except Etsi014Error as exc:
                with lock:
                    failures[str(exc.status)] = failures.get(str(exc.status), 0) + 1
                continue
            t1 = time.perf_counter()
            with lock:
                done.append((t1 - start, t1 - t0))

    before = carved_bits(net)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    consumed = carved_bits(net) - before
    finish = np.asarray([t for t, _ in done])
    latency = np.asarray([lat for _, lat in done])
    windows = [int(np.count_nonzero((finish >= w) & (finish < w + WINDOW_S))) / WINDOW_S
               for w in np.arange(0.0, duration_s, WINDOW_S)]
    return {"route": f"A->{net.manifest['saes'][slave]['node']}", "clients": clients, "duration_s": round(elapsed, 1),
            "round_trips": int(finish.size), "round_trips_per_s": round(finish.size / elapsed, 1),
            "per_10s_window": [round(w, 1) for w in windows], "failed": failures,
            "p50_ms": round(float(np.percentile(latency, 50)) * 1e3, 2) if latency.size else None,
            "p99_ms": round(float(np.percentile(latency, 99)) * 1e3, 2) if latency.size else None,
            "key_bits_per_s": round(finish.size * size_bits / elapsed),
            "link_bits_per_key_bit": round(consumed / max(1, finish.size * size_bits), 3)}


def chain_network(root: Path, length: int, source: dict) -> LocalNetwork:
    """Nodes A, B, ... (``length`` of them, SAE sae-a at A, sae-b at B, ...) linked in a
    chain, every link fed by ``source``; not started."""
    kme_ids = [chr(ord("A") + index) for index in range(length)]
    return LocalNetwork(root, {kme_id: (f"sae-{kme_id.lower()}",) for kme_id in kme_ids},
                        list(zip(kme_ids, kme_ids[1:])), source)


def link_report(net: LocalNetwork) -> list[dict]:
    """Each link end's measured speedup and secret rates, from /km/v1/links of node A."""
    from qkms.link_status import fetch_link_state

    state = fetch_link_state(net.manifest, "A")
    return [{"link": h.link_id, "end": h.owner, "speedup": round(h.metrics.get("speedup", 0.0), 3),
             "cpu_speedup": round(h.metrics.get("cpu_speedup", 0.0), 3),
             "secret_rate_bps": round(h.metrics.get("secret_rate_bps", 0.0)),
             "device_secret_rate_bps": round(h.metrics.get("device_secret_rate_bps", 0.0)),
             "pool_bits": h.available_bits} for h in state.halves]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per route")
    parser.add_argument("--size-bits", type=int, default=256)
    parser.add_argument("--pulses-per-frame", type=int, default=DEMO_LINK_SOURCE["pulses_per_frame"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qkms-relay-bench-") as tmp:
        net = chain_network(Path(tmp), 4, {**DEMO_LINK_SOURCE, "pulses_per_frame": args.pulses_per_frame})
        try:
            net.start()
            for slave in ("sae-b", "sae-d"):
                net.wait_for_keys(net.client("sae-a"), slave, 1, timeout_s=600)
                print(json.dumps(run_route(net, slave, args.clients, args.duration, args.size_bits)), flush=True)
                print(json.dumps(link_report(net)), flush=True)
        finally:
            net.close()


if __name__ == "__main__":
    main()
