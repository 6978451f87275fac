"""Quantum internet figures for docs/quantum-internet.md: key rate vs distance (decoy BB84,
BBM92, repeater chains, PLOB), the chain's PLOB crossover distance, a satellite pass,
and what the simulations cost.

    .venv/bin/python benchmarks/bench_quantum_internet.py [--out docs]

Writes OUT/quantum_internet_rates.png and OUT/satellite_pass.png; prints the figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from adapters.qkd_sim import analytic
from adapters.qkd_sim.params import preset
from adapters.qkd_sim.sweep import pyplot
from adapters.quantum_internet.bbm92 import run_bbm92
from adapters.quantum_internet.bbm92_model import Bbm92Params, asymptotic_rate
from adapters.quantum_internet.repeater import ChainParams, plob_bits_per_s, simulate_chain
from adapters.quantum_internet.satellite import SatelliteParams, link_at

CLOCK_HZ = 1e9
ROUNDS = 20_000


def bbm92_best_rate(length_km: float) -> float:
    """MFL asymptotic rate (q = 1/2) with the mean pair number chosen per length."""
    return max(asymptotic_rate(Bbm92Params(length_km=length_km, mean_pairs_per_pulse=mu))
               for mu in np.geomspace(1e-3, 0.5, 60))


def crossover_km(params: ChainParams, lo: float = 50.0, hi: float = 1000.0) -> float:
    """Shortest length where the chain's secret rate exceeds PLOB (bisection to 1 km)."""
    def beats(length: float) -> bool:
        result = simulate_chain(params.replace(length_km=length), ROUNDS, seed=1)
        return result.secret_bits_per_s > result.plob_bits_per_s
    while hi - lo > 1.0:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if beats(mid) else (mid, hi)
    return hi


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def rate_figure(out: Path, chains: dict[int, ChainParams]) -> None:
    plt = pyplot()
    lengths = np.linspace(1, 1000, 200)
    gys = preset("gys")
    fig, ax = plt.subplots(figsize=(8, 5))
    bb84 = [analytic.optimal_rate(analytic.infinite_decoy_rate, gys, L)[0] * CLOCK_HZ for L in lengths]
    ax.semilogy(lengths, np.where(np.array(bb84) > 0, bb84, np.nan), label="decoy BB84, GYS (1 GHz)")
    bbm = [bbm92_best_rate(L) * CLOCK_HZ for L in lengths]
    ax.semilogy(lengths, np.where(np.array(bbm) > 0, bbm, np.nan), label="BBM92, source in the middle, GYS (1 GHz)")
    for n, params in chains.items():
        grid = np.linspace(50, 1000, 40)
        rates = [simulate_chain(params.replace(length_km=L), 5000, seed=2).secret_bits_per_s for L in grid]
        ax.semilogy(grid, np.where(np.array(rates) > 0, rates, np.nan), "o-", ms=3, label=f"repeater chain, N = {n}")
    plob = [plob_bits_per_s(ChainParams(length_km=L)) for L in lengths]
    ax.semilogy(lengths, plob, "k--", label="PLOB, 0.2 dB/km, 1 GHz")
    ax.set(xlabel="distance (km)", ylabel="secret key rate (bit/s)", ylim=(1e-4, 1e9))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out / "quantum_internet_rates.png", dpi=110, bbox_inches="tight")


def pass_figure(out: Path, params: SatelliteParams) -> None:
    plt = pyplot()
    fractions = np.linspace(0, 1, 200)
    points = [link_at(params, f) for f in fractions]
    t = fractions * params.geometric_pass_s
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(t, [p["loss_db"] for p in points], label="downlink loss (dB)")
    ax.set(xlabel="time in pass (s)", ylabel="loss (dB)")
    ax2 = ax.twinx()
    ax2.semilogy(t, [p["secret_rate_bps"] for p in points], "r", label="secret key rate (bit/s)")
    ax2.set_ylabel("secret key rate (bit/s)")
    fig.legend(loc="upper center", fontsize=8)
    fig.savefig(out / "satellite_pass.png", dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    started = time.perf_counter()
    base = ChainParams()
    cross = {n: crossover_km(base.replace(segments=n)) for n in (4, 8, 16)}
    for n, km in cross.items():
        print(f"repeater chain N={n}: beats PLOB beyond {km:.0f} km")
    result, seconds = timed(simulate_chain, base.replace(length_km=cross[8]), ROUNDS, 1)
    print(f"chain N=8 at {cross[8]:.0f} km: {ROUNDS} rounds in {seconds:.3f} s; F={result.fidelity:.4f}, "
          f"{result.pairs_per_s:.4g} pairs/s, {result.secret_bits_per_s:.4g} bit/s, PLOB {result.plob_bits_per_s:.4g}")
    run, seconds = timed(run_bbm92, Bbm92Params(length_km=25), 10**10, 1)
    print(f"BBM92 25 km, 1e10 pulses: {seconds:.2f} s, S={run.stats.chsh_s:.3f}, QBER={run.stats.qber:.4f}, "
          f"{run.stats.secret_bits} secret bits ({run.stats.coincidences} coincidences)")
    sat = SatelliteParams()
    zenith, low = link_at(sat, 0.5), link_at(sat, 0.0)
    print(f"satellite pass {sat.geometric_pass_s:.0f} s above {sat.min_elevation_deg:.0f} deg: loss "
          f"{zenith['loss_db']:.1f} dB at {zenith['range_km']:.0f} km, {low['loss_db']:.1f} dB at {low['range_km']:.0f} km; "
          f"key {zenith['secret_rate_bps']:.3g} .. {low['secret_rate_bps']:.3g} bit/s")
    _, seconds = timed(rate_figure, args.out, {n: base.replace(segments=n) for n in (4, 8, 16)})
    pass_figure(args.out, sat)
    print(f"figures: {seconds:.1f} s; total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
