"""Secret key per pulse vs fibre length for frames of 1e8 .. 1e11 pulses (docs figure).

Run:  .venv/bin/python benchmarks/plot_rate_vs_distance.py [--out docs/rate_vs_distance.png]

Per preset (GYS; Toshiba 2013) and frame size N: the expected finite-key rate with
mu, nu, p_mu, p_nu, p_z optimised for (length, N) (Lim et al. 2014 bound, per-count
Chernoff deviations, efficient BB84: sifting factor p_z^2 with p_z optimised); simulated
points from the full engine (event-level Monte Carlo, Cascade, verification, privacy
amplification) with the same parameters; the asymptotic infinite-decoy rate of the
symmetric BB84 of Lo, Ma, Chen 2005 (sifting factor 1/2) and of our efficient BB84 in
the limit p_z -> 1 (sifting factor -> 1, f as the preset's); and the PLOB bound.
The expected curves charge error correction at the preset's f (1.22 for GYS, 1.1 for
Toshiba); the simulated points charge what Cascade leaked (f ~1.06), so they can lie
slightly above their curve.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from adapters.qkd_sim import analytic, preset, run_link
from adapters.qkd_sim.optimize import optimal_parameters
from adapters.qkd_sim.sweep import pyplot

FRAMES = (10**8, 10**9, 10**10, 10**11)
#: Simulated points: (frame size, lengths) kept to a few CPU minutes in all.
SIMULATED = {10**8: (0, 20, 40), 10**9: (0, 25, 50, 75), 10**10: (50, 75, 100, 125), 10**11: (125, 150)}


def expected_curve(params, pulses: int, lengths) -> np.ndarray:
    return np.array([optimal_parameters(params.replace(length_km=float(L)), float(pulses)).rate_bits_per_pulse
                     for L in lengths])


def simulated_points(params, pulses: int, lengths) -> list[tuple[float, float]]:
    points = []
    for L in lengths:
        chosen = optimal_parameters(params.replace(length_km=float(L)), float(pulses)).params
        start = time.process_time()
        stats = run_link(chosen, pulses, seed=1).stats
        print(f"  {params_name(params)} N={pulses:.0e} L={L} km: {stats.secret_bits} bits "
              f"({stats.secret_bits_per_pulse:.3g}/pulse) in {time.process_time() - start:.1f} s CPU", flush=True)
        points.append((float(L), stats.secret_bits_per_pulse))
    return points


def params_name(params) -> str:
    return "Toshiba 2013" if params.afterpulse_prob > 0 else "GYS"


def panel(ax, name: str, title: str, max_km: float) -> None:
    params = preset(name)
    lengths = np.linspace(0.0, max_km, 41)
    colours = dict(zip(FRAMES, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for pulses in FRAMES:
        rates = expected_curve(params, pulses, lengths)
        shown = rates > 0
        ax.semilogy(lengths[shown], rates[shown], "-", color=colours[pulses],
                    label=f"N = 1e{int(np.log10(pulses))}: finite key, optimised (expected)")
        pts = [(L, r) for L, r in simulated_points(params, pulses, SIMULATED[pulses]) if r > 0]
        if pts:
            ax.semilogy(*zip(*pts), "o", color=colours[pulses], mfc="none")
    for variant, style, label in (
            (params.replace(protocol="symmetric-bb84", p_z=0.5), "k--",
             "asymptotic, infinite decoys, symmetric BB84, q = 1/2 (Lo-Ma-Chen 2005)"),
            (params.replace(p_z=0.999), "k-.", "asymptotic, infinite decoys, efficient BB84, p_z -> 1 (q -> 1)")):
        asym = np.array([analytic.optimal_rate(analytic.infinite_decoy_rate, variant, L)[0] for L in lengths])
        ax.semilogy(lengths, np.where(asym > 0, asym, np.nan), style, label=label)
    ax.semilogy(lengths, [analytic.plob_bound(params, L) for L in lengths], "k:", label="PLOB bound")
    ax.set(xlabel="fibre length (km)", ylabel="secret key (bits per pulse)", title=title, ylim=(1e-9, 1))
    ax.grid(True, which="both", alpha=0.3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/rate_vs_distance.png")
    args = parser.parse_args()
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    panel(axes[0], "gys", "GYS (Gobby, Yuan, Shields 2004)", 160.0)
    panel(axes[1], "toshiba-2013", "Toshiba 1 GHz (Lucamarini et al. 2013)", 160.0)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Decoy-state BB84: lines expected finite-key rate with optimised parameters, "
                 "circles simulated (full engine); efficient BB84 keys from Z (q = p_z^2)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
