"""Bench report: ETSI round-trip throughput and latency across deployments, adjacent and
relayed keys, simulation and post-processing throughput, written as Markdown with plots.

``make bench`` runs it. Round trips: one node at 1, 2 and 4 gevent workers on its
embedded Redis; two replicas behind HAProxy on one Debian redis-server; one node on a
Debian redis-server, a Sentinel set and a Cluster (benchmarks/bench_topologies.py,
measured by bench_etsi_roundtrip's clients). Relay: a chain A-B-C (bench_relay).
Simulation and post-processing: bench_montecarlo's and bench_postprocessing's kernels.

    .venv/bin/python benchmarks/bench_report.py [--quick] [--seconds 10] [--out docs/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_relay import chain_network, run_route  # noqa: E402
from benchmarks.bench_topologies import STORES, node_on_store, one_node, replicas, roundtrip  # noqa: E402
from benchmarks.report_writer import write_report  # noqa: E402
from tests.support.network import FAST_LINK  # noqa: E402

WORKERS = (1, 2, 4)
#: Key material put into each link's pools before the relay runs, so that they measure
#: the nodes' relaying, not the simulated links' key rate.
PREFILL_BITS = 16 * 2**20
#: Round trips run and not counted on each route before it is measured.
WARM_UP_S = 2.0


def roundtrip_row(label: str, result: dict) -> dict:
    return {"label": label, "node_cpu_ms": result["cpu_ms_per_round_trip"]["node"],
            **{key: result[key] for key in ("clients", "round_trips_per_s", "p50_ms", "p99_ms", "failures")}}


def roundtrip_sections(root: Path, clients: int, seconds: float) -> dict:
    common = (f"{clients} SAE pairs, one client process each (bench_etsi_roundtrip's wire client, keep-alive "
              f"mutual TLS), for {seconds:g} s; a round trip is enc_keys then dec_keys of the same key. "
              "Node CPU: the `qkms serve` process trees, Redis excluded.")
    workers = []
    for count in WORKERS:
        with one_node(root / f"workers-{count}", count) as target:
            workers.append(roundtrip_row(f"1 node, {count} worker{'s' * (count > 1)}",
                                         roundtrip(target, clients, seconds)))
    spread = []
    for each in (1, 2):
        with replicas(root / f"replicas-{each}", 2, each) as target:
            spread.append(roundtrip_row(f"2 replicas x {each} worker{'s' * (each > 1)}",
                                        roundtrip(target, clients, seconds)))
    stores = []
    for store in STORES:
        with node_on_store(root / f"store-{store}", store, 2) as target:
            stores.append(roundtrip_row(f"1 node, 2 workers, {store}", roundtrip(target, clients, seconds)))
    return {
        "workers": {"setup": f"`qkms serve` with gevent workers on its embedded Redis (unix socket, "
                             f"appendfsync always). {common}", "rows": workers},
        "replicas": {"setup": "Two `qkms serve` replicas of one node (1 or 2 gevent workers each) sharing one "
                              "Debian redis-server (TCP, appendfsync always), behind HAProxy in mode tcp (TLS "
                              f"passed through to the replicas, round robin; HAProxy's CPU is not counted). {common} 2 replicas x 1 worker "
                              "compares with the 2-worker node above, 2 x 2 with the 4-worker one.",
                     "rows": spread},
        "stores": {"setup": "One node with 2 gevent workers on a Debian redis-server (`url`), on a Sentinel "
                            "set (master, replica, three sentinels) and on a Cluster (three masters with a "
                            "replica each), every server with appendfsync always; compare with the 2-worker "
                            f"node on its embedded Redis above. {common}", "rows": stores},
    }


def relay_section(root: Path, clients: int, seconds: float) -> dict:
    net = chain_network(root, 3, FAST_LINK)
    rows = []
    try:
        net.start()
        for a, b in (("A", "B"), ("B", "C")):
            net.inject(a, b, PREFILL_BITS)
        for slave, label in (("sae-b", "adjacent, A to B"), ("sae-c", "relayed, 2 hops, A to C")):
            net.wait_for_keys(net.client("sae-a"), slave, 1, timeout_s=120)
            run_route(net, slave, clients, WARM_UP_S, 256)  # the nodes' first relays, not counted
            result = run_route(net, slave, clients, seconds, 256)
            rows.append({"label": label, "failures": sum(result["failed"].values()),
                         **{key: result[key] for key in ("clients", "round_trips_per_s", "p50_ms", "p99_ms",
                                                         "link_bits_per_key_bit")}})
    finally:
        net.close()
    return {"setup": f"A chain A-B-C of `qkms serve` nodes (default config, 2 workers each) with simulated "
                     f"links (tests' FAST_LINK: {FAST_LINK['preset']}, {FAST_LINK['length_km']} km), each link's "
                     f"pools pre-filled with {PREFILL_BITS / 2**20:g} Mibit so that the relaying is measured, "
                     f"not the links' key rate (the links keep simulating meanwhile). {clients} SAE threads "
                     f"in one process (the product's httpx client) for {seconds:g} s per route after "
                     f"{WARM_UP_S:g} s not counted, 256-bit keys.",
            "rows": rows}


def simulation_section(pulses: int, repeats: int) -> dict:
    from adapters.qkd_sim import preset
    from adapters.qkd_sim.events import simulate_events
    from adapters.qkd_sim.optimize import optimal_parameters
    from benchmarks.bench_montecarlo import pulses_per_s

    rows = []
    for name in ("gys", "toshiba-2013"):
        params = optimal_parameters(preset(name, length_km=25.0), 1e9).params
        rates = sorted(pulses_per_s(simulate_events, params, pulses, repeats))
        rows.append({"label": name, "pulses": pulses, "runs": repeats, "median_pulses_per_s": rates[len(rates) // 2],
                     "min_pulses_per_s": rates[0], "max_pulses_per_s": rates[-1]})
    return {"setup": "Event-level sampler (bench_montecarlo) at 25 km with parameters optimised for a 1e9-pulse "
                     "frame, pulses per CPU second of one process (`time.process_time`), kernels compiled first.",
            "rows": rows}


def postprocessing_section(frames: int) -> dict:
    from benchmarks.bench_postprocessing import QBERS, throughput, warm_up

    warm_up(frames)
    rows = [{"label": f"{qber:.0%}", **throughput(frames, qber)} for qber in QBERS]
    return {"setup": f"{frames} frames of 10^4 sifted bits on a binary symmetric channel (bench_postprocessing): "
                     "Cascade, verification and Toeplitz privacy amplification, sifted bits per CPU second of one "
                     "process; both parties computed with one shared seed transform, or one per party, or one "
                     "party alone.", "rows": rows}


def machine(load_before: tuple[float, float, float]) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    return {"CPU": model, "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable by this run)",
            "memory": f"{memory_kib / 2**20:.1f} GiB", "system": platform.platform(),
            "Python": platform.python_version(), "niceness of the run": os.nice(0),
            "load average (1, 5, 15 min) before": _load(load_before), "load average after": _load(os.getloadavg())}


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in load)


def git_commit() -> str:
    run = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return run.stdout.strip() or "unknown"


def command() -> str:
    """This run's command line, ``make bench`` first when make started it."""
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    script = shlex.join([python, os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    return f"make bench`, which ran `{script}" if os.environ.get("MAKELEVEL") else script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 s per point, small simulations")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per round-trip point and relay route")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    load_before, started = os.getloadavg(), time.monotonic()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="qkms-bench-report-") as tmp:
        root = Path(tmp)
        sections = roundtrip_sections(root / "roundtrips", args.clients, seconds)
        sections["relay"] = relay_section(root / "relay", args.clients, seconds)
    sections["simulation"] = simulation_section(10**8 if args.quick else 10**9, 1 if args.quick else 3)
    sections["postprocessing"] = postprocessing_section(64 if args.quick else 512)
    context = {"command": command(), "date": date, "commit": git_commit(),
               "duration_s": time.monotonic() - started, "machine": machine(load_before), "remarks": [
                   "The machine is shared with other test runs and its speed varies from hour to hour; clients "
                   "and servers run on the same cores. Read the figures as one sample of this machine at this "
                   "time, to compare the configurations with each other, not as capacities.",
                   "Latencies include the clients' own queueing on the shared cores.",
                   "Each point is one run; repeated runs of one point have differed by up to about 30 % on "
                   "this machine (README, Performance), so smaller differences between rows say little."]}
    report = write_report(args.out, sections, context)
    (args.out / "figures.json").write_text(json.dumps({"context": context, "sections": sections}, indent=1) + "\n")
    print(f"report: {os.path.relpath(report)}")


if __name__ == "__main__":
    main()
