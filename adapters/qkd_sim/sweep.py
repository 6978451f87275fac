"""Key rate versus distance: analytic curves, simulated points, PLOB, as PNG and SVG."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from adapters.qkd_sim import analytic
from adapters.qkd_sim.engine import run_link
from adapters.qkd_sim.params import LinkParams
from kms.extras import optional_dependency


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """Simulated rates (bits per pulse) at one length."""

    length_km: float
    asymptotic_bits_per_pulse: float
    finite_bits_per_pulse: float


def simulate_points(params: LinkParams, lengths_km, pulses: int, seed: int) -> list[SweepPoint]:
    """Run the full engine at each length (same seed, independent runs)."""
    points = []
    for length in lengths_km:
        stats = run_link(params.replace(length_km=float(length)), pulses, seed).stats
        points.append(SweepPoint(float(length), stats.asymptotic_bits_per_pulse,
                                 stats.secret_bits_per_pulse))
    return points


def analytic_curves(params: LinkParams, lengths_km: np.ndarray) -> dict[str, np.ndarray]:
    """Rates per pulse on a grid: decoy (vacuum+weak, infinite), no decoy, PLOB."""
    def opt(fn):
        return np.array([analytic.optimal_rate(fn, params, L)[0] for L in lengths_km])
    return {
        "decoy, vacuum + weak (Ma et al. 2005)": np.array(
            [analytic.vacuum_weak_decoy_rate(params, L) for L in lengths_km]),
        "decoy, infinite, optimal mu (Lo-Ma-Chen 2005)": opt(analytic.infinite_decoy_rate),
        "no decoy, optimal mu (GLLP 2004)": opt(analytic.no_decoy_rate),
        "PLOB bound (Pirandola et al. 2017)": np.array([analytic.plob_bound(params, L) for L in lengths_km]),
    }


def pyplot():
    """matplotlib.pyplot drawing to files only (MissingExtra without ``qkms[plot]``)."""
    with optional_dependency(extra="plot", feature="a rate-vs-distance plot"):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    return plt


def _semilogy(ax, lengths_km, rates, style: str, label: str) -> None:
    """Plot the positive rates on the log axis; a series with none stays out of the legend."""
    rates = np.asarray(rates, dtype=float)
    shown = np.isfinite(rates) & (rates > 0)
    if shown.any():
        ax.semilogy(lengths_km, np.where(shown, rates, np.nan), style, label=label)


def sweep_figure(params: LinkParams, points: list[SweepPoint], max_km: float = 200.0):
    """The rate-vs-distance figure: analytic curves, simulated points, PLOB."""
    plt = pyplot()
    grid = np.linspace(0.0, max_km, 201)
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, rates in analytic_curves(params, grid).items():
        _semilogy(ax, grid, rates, "-", label)
    lengths = [p.length_km for p in points]
    _semilogy(ax, lengths, [p.asymptotic_bits_per_pulse for p in points], "o",
              "simulated, asymptotic estimate from MC counts")
    _semilogy(ax, lengths, [p.finite_bits_per_pulse for p in points], "s",
              "simulated, finite-key (Lim et al. 2014)")
    ax.set(xlabel="fibre length (km)", ylabel="secret key (bits per pulse)",
           title=f"Decoy-state BB84, mu={params.mu}, nu={params.nu}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot_sweep(params: LinkParams, points: list[SweepPoint], out_prefix: str,
               max_km: float = 200.0) -> list[Path]:
    """Write OUT_PREFIX.png and OUT_PREFIX.svg; returns the paths."""
    fig = sweep_figure(params, points, max_km)
    paths = [Path(f"{out_prefix}.{ext}") for ext in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return paths
