"""Benchmark: a pqc-only link between two real nodes (ML-KEM exchanges signed with ML-DSA).

1. Key rate into the pools, per KEM backend available here: a two-node network whose
   link's ``ml-kem`` source runs unthrottled (``blocks_per_s`` far above what the
   machine can do), ``--window`` seconds after the first blocks arrived; bits/s that
   entered node A's copy of both pool halves (nothing is consumed meanwhile), and
   exchanges/s.
2. ETSI enc_keys + dec_keys round trips at ``--clients`` concurrent SAE pairs over the
   same link (cryptography backend, paced at ``--blocks-per-s`` meanwhile).

    .venv/bin/python benchmarks/bench_pqc.py --window 10 --clients 16 --round-trips 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.pqc.kem import available_backends  # noqa: E402
from bench_relay import run_route  # noqa: E402
from tests.support.network import FAST_LINK, LocalNetwork  # noqa: E402

POOL = "A-B#pqc"


def pool_bits(net: LocalNetwork) -> int:
    """Unused bits of both halves of the PQC pool in node A's copy."""
    pools = net.pools("A")
    return pools.available_bits(POOL, "A") + pools.available_bits(POOL, "B")


def network(root: Path, backend: str, blocks_per_s: float, block_bytes: int) -> LocalNetwork:
    pqc = {"kind": "ml-kem", "kem": "ML-KEM-768", "signature": "ML-DSA-65", "backend": backend,
           "block_bytes": block_bytes, "blocks_per_s": blocks_per_s}
    return LocalNetwork(root, {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")], FAST_LINK,
                        policies={("A", "B"): "pqc-only"}, pqc=pqc)


def wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the PQC link delivered nothing")
        time.sleep(0.2)


def key_rate(backend: str, window_s: float, block_bytes: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"qkms-pqc-{backend}-") as tmp:
        net = network(Path(tmp), backend, 10_000, block_bytes)
        try:
            net.start()
            wait_for(lambda: pool_bits(net) > 0, 60)
            before, start = pool_bits(net), time.monotonic()
            time.sleep(window_s)
            added, elapsed = pool_bits(net) - before, time.monotonic() - start
        finally:
            net.close()
    return {"backend": backend, "kem": "ML-KEM-768", "signature": "ML-DSA-65", "block_bits": block_bytes * 8,
            "key_rate_bps": round(added / elapsed), "exchanges_per_s": round(added / elapsed / (block_bytes * 8), 1)}


def round_trips(clients: int, count: int, blocks_per_s: float, block_bytes: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="qkms-pqc-rt-") as tmp:
        net = network(Path(tmp), "cryptography", blocks_per_s, block_bytes)
        try:
            net.start()
            net.wait_for_keys(net.client("sae-a"), "sae-b", count // 4, timeout_s=300)
            return {**run_route(net, "sae-b", clients, count, 256), "link": "pqc-only",
                    "pqc_blocks_per_s": blocks_per_s}
        finally:
            net.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds of the key-rate measurement")
    parser.add_argument("--block-bytes", type=int, default=4096)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--blocks-per-s", type=float, default=20.0,
                        help="the link's pace during the round-trip run (the key-rate run is unthrottled)")
    args = parser.parse_args()
    for backend in available_backends():
        print(json.dumps(key_rate(backend.name, args.window, args.block_bytes)), flush=True)
    print(json.dumps(round_trips(args.clients, args.round_trips, args.blocks_per_s, args.block_bytes)), flush=True)


if __name__ == "__main__":
    main()
