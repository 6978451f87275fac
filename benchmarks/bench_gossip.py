"""Benchmark: how far link-state gossip scales (docs/operations.md).

Simulates square grids of nodes (every inner node has four links) running the link
managers' gossip (kms/link_gossip.py, rounds every 0.5 s, refresh every 3 s) with
tests/support/gossip_sim.py, and reports per size: messages and halves sent per
second once steady, the most halves one node receives per second, the rounds until a
changed half is known everywhere, and the seconds one gossip round of the whole
network takes in this process (the pure Python work, no I/O).

    .venv/bin/python benchmarks/bench_gossip.py --sides 3 5 10 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.gossip_sim import GossipNetwork, grid  # noqa: E402


def measure(side: int, steady_rounds: int = 12) -> dict:
    links = grid(side)
    net = GossipNetwork(links)
    for _ in range(12):
        net.round()
    started = time.perf_counter()
    traffic = [net.round() for _ in range(steady_rounds)]
    cpu_s = (time.perf_counter() - started) / steady_rounds
    seconds = steady_rounds * net.round_s
    far = net.rounds_until_known_everywhere(links[0][0] + "-" + links[0][1], links[0][0], "down")
    return {"nodes": side * side, "links": len(links), "halves": 2 * len(links),
            "messages_per_s": round(sum(t.messages for t in traffic) / seconds, 1),
            "halves_sent_per_s": round(sum(t.halves for t in traffic) / seconds, 1),
            "max_halves_received_per_node_per_s": round(max(t.max_halves_received_by_a_node for t in traffic)
                                                        / net.round_s, 1),
            "rounds_until_known_everywhere": far, "diameter_hops": 2 * (side - 1),
            "simulated_round_cpu_ms": round(cpu_s * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[3, 5, 10, 20])
    args = parser.parse_args()
    print(json.dumps([measure(side) for side in args.sides], indent=2))


if __name__ == "__main__":
    main()
