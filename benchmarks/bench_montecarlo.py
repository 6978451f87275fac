"""Monte Carlo speed: pulses per CPU second at 25 km, event level vs pulse level.

Run:  OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/bench_montecarlo.py [--repeats 3]

Per preset (GYS, Toshiba 2013) with its parameters optimised for a 1e9-pulse frame:
the event-level sampler on 1e9 and 1e10 pulses, the pulse-level reference on 2e7
(its cost is per pulse), CPU time (``time.process_time``), kernels compiled first.
The whole engine (Monte Carlo + post-processing, both parties) on 1e9 pulses gives the
CPU speedup of one link end: device seconds simulated per CPU second.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from adapters.qkd_sim import preset, run_link  # noqa: E402
from adapters.qkd_sim.channel import make_channel  # noqa: E402
from adapters.qkd_sim.events import simulate_events  # noqa: E402
from adapters.qkd_sim.montecarlo import simulate_pulses  # noqa: E402
from adapters.qkd_sim.optimize import optimal_parameters  # noqa: E402


def pulses_per_s(sampler, params, pulses: int, repeats: int) -> list[float]:
    sampler(params, 10**6, np.random.default_rng(0), make_channel(params, None))  # compile / warm up
    rates = []
    for seed in range(repeats):
        start = time.process_time()
        sampler(params, pulses, np.random.default_rng(seed), make_channel(params, None))
        rates.append(pulses / (time.process_time() - start))
    return rates


def engine_speedup(params, pulses: int, repeats: int) -> list[float]:
    run_link(params, 10**7, 0)
    out = []
    for seed in range(repeats):
        start = time.process_time()
        stats = run_link(params, pulses, seed).stats
        out.append((pulses / params.pulse_rate_hz) / (time.process_time() - start))
    print(f"    engine, {pulses:.0e} pulses: secret {stats.secret_bits} bits, QBER {stats.qber:.2%}, "
          f"clicks {stats.click_rate_hz:.3g}/s of max {stats.max_click_rate_hz:.3g}/s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length-km", type=float, default=25.0)
    args = parser.parse_args()
    fmt = lambda rates: ", ".join(f"{r:.3g}" for r in rates)
    for name in ("gys", "toshiba-2013"):
        params = optimal_parameters(preset(name, length_km=args.length_km), 1e9).params
        print(f"{name}, {args.length_km:g} km (mu {params.mu:.3f}, nu {params.nu:.3f}, p_z {params.p_z:.3f}):")
        for pulses in (10**9, 10**10):
            print(f"    event level, {pulses:.0e} pulses: {fmt(pulses_per_s(simulate_events, params, pulses, args.repeats))}"
                  " pulses/s", flush=True)
        print(f"    pulse level, 2e7 pulses: {fmt(pulses_per_s(simulate_pulses, params, 20_000_000, args.repeats))}"
              " pulses/s", flush=True)
        print(f"    CPU speedup of one link end: {fmt(engine_speedup(params, 10**9, args.repeats))}", flush=True)


if __name__ == "__main__":
    main()
