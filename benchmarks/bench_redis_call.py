"""Benchmark: the CPU one Redis command costs the process that sends it, as a node's
worker sends it.

One embedded Redis (kms.storage.embedded_redis, the node's default) answers ``GET`` on
its unix socket; each case runs in a process of its own so that gevent's monkey-patching
(what the node's gevent worker does) applies to it alone:

* ``plain``: no gevent, the client of ``kms.storage.redis_client``;
* ``gevent``: monkey-patched, the same client;
* ``gevent-stock-check``: monkey-patched, redis-py's own parser, whose readiness check
  of a pooled connection goes through gevent's cooperative ``poll``.

Prints the CPU microseconds per command of the sending process (its own CPU time, not
Redis's).

    .venv/bin/python benchmarks/bench_redis_call.py --commands 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = ("plain", "gevent", "gevent-stock-check")


def cpu_us_per_command(case: str, url: str, commands: int) -> float:
    if case.startswith("gevent"):
        from gevent import monkey
        monkey.patch_all()
    from kms.storage import redis_client as module

    if case == "gevent-stock-check":
        module.ReadinessParser.can_read = module._HiredisParser.can_read
    client = module.redis_client(url)
    client.set("bench", "1")
    for _ in range(1000):  # warm the pool and the interpreter
        client.get("bench")
    start = time.process_time()
    for _ in range(commands):
        client.get("bench")
    return (time.process_time() - start) / commands * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--case", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)  # run one case in this process
    args = parser.parse_args()
    if args.child_url:
        print(cpu_us_per_command(args.case[0], args.child_url, args.commands))
        return

    from kms.storage.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="qkms-bench-redis-") as tmp, EmbeddedRedis(Path(tmp)) as server:
        for case in args.case:
            child = subprocess.run([sys.executable, __file__, "--case", case, "--commands", str(args.commands),
                                    "--child-url", server.url], check=True, capture_output=True, text=True)
            cpu_us = float(child.stdout.split()[-1])
            print(json.dumps({"case": case, "commands": args.commands, "cpu_us_per_command": round(cpu_us, 1)}))


if __name__ == "__main__":
    main()
