"""Benchmark: key delivery across a network of real nodes (adjacent and 3-hop relay).

Starts a chain A-B-C-D of ``qkms serve`` processes with simulated QKD links; for each
route, A->B (adjacent) then A->D (three hops), waits until the pools hold enough
material, then runs ``--round-trips`` enc_keys + dec_keys round trips with
``--clients`` concurrent SAE pairs. The link simulations keep running meanwhile (six
link ends on the same cores), as they would on a node. Prints round trips per second, p50/p99 latency, and link key
material consumed per delivered key bit (from the pools' usage counters).

    .venv/bin/python benchmarks/bench_relay.py --clients 16 --round-trips 400
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

LINK = {"kind": "simulated", "preset": "snspd-illustrative", "length_km": 10}


def carved_bits(net: LocalNetwork) -> int:
    """Bits carved from every pool (QKD and PQC) of every link, by its senders."""
    return sum(net.pools(owner).usage_bits(pool, owner)["carved_bits"]
               for link in net.links for pool in (link.link_id, f"{link.link_id}#pqc") for owner in link.nodes)


def run_route(net: LocalNetwork, slave: str, clients: int, round_trips: int, size_bits: int) -> dict:
    """``round_trips`` enc+dec round trips from sae-a to ``slave`` over ``clients`` threads."""
    latencies: list[float] = []
    failures = {"count": 0}
    lock = threading.Lock()
    per_client = [round_trips // clients + (i < round_trips % clients) for i in range(clients)]

    def worker(count: int) -> None:
        master, receiver = net.client("sae-a"), net.client(slave)
        for _ in range(count):
            t0 = time.perf_counter()
            try:
                (key,) = master.enc_keys(slave, number=1, size_bits=size_bits)
                receiver.dec_keys("sae-a", [key.key_id])
            except Etsi014Error:
                with lock:
                    failures["count"] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    before = carved_bits(net)
    threads = [threading.Thread(target=worker, args=(n,)) for n in per_client]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    consumed = carved_bits(net) - before
    done = np.asarray(latencies)
    return {"route": f"A->{net.manifest['saes'][slave]['node']}", "clients": clients,
            "round_trips": int(done.size), "failed": failures["count"],
            "round_trips_per_s": round(done.size / elapsed, 1),
            "p50_ms": round(float(np.percentile(done, 50)) * 1e3, 2) if done.size else None,
            "p99_ms": round(float(np.percentile(done, 99)) * 1e3, 2) if done.size else None,
            "link_bits_per_key_bit": round(consumed / max(1, done.size * size_bits), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--round-trips", type=int, default=400)
    parser.add_argument("--size-bits", type=int, default=256)
    parser.add_argument("--pulses-per-frame", type=int, default=25_000_000,
                        help="large, rare frames (default) leave the cores to key delivery between frames; "
                             "3e6 with --frame-interval 3 keeps the simulations busy during the run")
    parser.add_argument("--frame-interval", type=float, default=45.0, help="seconds between frames")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qkms-relay-bench-") as tmp:
        net = LocalNetwork(Path(tmp), {"A": ("sae-a",), "B": ("sae-b",), "C": ("sae-c",), "D": ("sae-d",)},
                           [("A", "B"), ("B", "C"), ("C", "D")],
                           {**LINK, "pulses_per_frame": args.pulses_per_frame, "frame_interval_s": args.frame_interval})
        try:
            net.start()
            needed = args.round_trips * args.size_bits // 256 + 16
            for slave in ("sae-b", "sae-d"):
                net.wait_for_keys(net.client("sae-a"), slave, needed, timeout_s=600)
                print(json.dumps(run_route(net, slave, args.clients, args.round_trips, args.size_bits)), flush=True)
        finally:
            net.close()


if __name__ == "__main__":
    main()
