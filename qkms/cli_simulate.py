"""``qkms simulate``: run the simulated decoy-state BB84 link from the command line.

Progress goes to stderr; with ``--json`` stdout holds exactly one JSON object.  Key
material is never printed.
"""

from __future__ import annotations

import importlib
import json
import math

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from adapters.qkd_sim import analytic
from adapters.qkd_sim.channel import EVE_MODELS, EveSpec
from adapters.qkd_sim.engine import LinkStats, run_link
from adapters.qkd_sim.errors import InvalidLinkParams
from adapters.qkd_sim.decoy import DEVIATIONS
from adapters.qkd_sim.optimize import Choice, optimal_parameters
from adapters.qkd_sim.params import PRESETS, LinkParams, preset
from adapters.qkd_sim.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from adapters.qkd_sim.sweep import plot_sweep, pyplot, simulate_points
from adapters.quantum_internet.simulate import SimulationRequest
from kms.errors import MissingExtra

JSON_FIELDS = ("length_km", "pulses", "qber", "sifted_bits", "secret_bits",
               "secret_bits_per_pulse", "reconciliation_efficiency", "y1_lower", "e1_upper",
               "phase_error_upper", "asymptotic_bits_per_pulse", "frames", "frames_failed",
               "leaked_ec_bits", "aborted", "abort_reason", "mu", "nu", "eve")
#: Added to the run's JSON: the protocol parameters used and how they were chosen.
PARAMETER_FIELDS = ("mu3", "p_mu", "p_nu", "p_z", "protocol", "deviation_bound")
#: Added to the run's JSON from the statistics: the detectors' click rate and maximum.
CLICK_FIELDS = ("click_rate_hz", "max_click_rate_hz")


def _json_safe(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _run_with_progress(params: LinkParams, pulses: int, seed: int, eve: EveSpec | None) -> LinkStats:
    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks = {"simulate": bar.add_task("simulating pulses", total=pulses),
                 "reconcile": bar.add_task("reconciling frames", total=None)}

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(tasks[stage], advance=done, total=total)

        return run_link(params, pulses, seed, eve, progress).stats


def _table(stats: LinkStats, params: LinkParams) -> Table:
    table = Table(title=f"Simulated link, {stats.length_km:g} km, {stats.pulses:.3g} pulses")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    seconds = stats.pulses / params.pulse_rate_hz
    rows = [("intensities mu / nu / mu3", f"{params.mu:.4g} / {params.nu:.4g} / {params.mu3:.3g}"),
            ("probabilities p_mu / p_nu, basis p_z", f"{params.p_mu:.3g} / {params.p_nu:.3g}, {params.p_z:.3g}"),
            ("QBER (estimate)", f"{stats.qber:.2%}"), ("sifted bits", f"{stats.sifted_bits}"),
            ("detector clicks", f"{stats.click_rate_hz:.3g}/s of at most {stats.max_click_rate_hz:.3g}/s"),
            ("sifted rate", f"{stats.sifted_bits / seconds:.4g} bit/s"),
            ("reconciliation efficiency f", f"{stats.reconciliation_efficiency:.3f}"),
            ("Y1 lower bound", f"{stats.y1_lower:.4g}"), ("e1 upper bound", f"{stats.e1_upper:.2%}"),
            ("phase error upper bound", f"{stats.phase_error_upper:.2%}"),
            ("finite-key length", f"{stats.secret_bits} bits"),
            ("secret rate", f"{stats.secret_bits / seconds:.4g} bit/s "
                            f"({stats.secret_bits_per_pulse:.3g} bit/pulse, sifting factor "
                            f"{analytic.sifting_factor(params):.3g})"),
            ("asymptotic estimate", f"{stats.asymptotic_bits_per_pulse:.3g} bit/pulse"),
            ("status", f"ABORTED: {stats.abort_reason}" if stats.aborted else "key produced")]
    for row in rows:
        table.add_row(*row)
    return table


def _write_sweep(params: LinkParams, pulses: int, seed: int, prefix: str, paths_to_stderr: bool) -> None:
    try:
        pyplot()  # without the plot extra, fail now rather than after minutes of simulation
        points = simulate_points(params, [0.0, 25.0, 50.0], pulses, seed)
        paths = plot_sweep(params, points, prefix)
    except MissingExtra as exc:
        raise click.ClickException(exc.message) from None
    for path in paths:
        click.echo(str(path), err=paths_to_stderr)


def _analytic(params: LinkParams) -> dict:
    """Asymptotic rates per pulse, with the sifting factor they use."""
    return {"length_km": params.length_km, "mu": params.mu, "nu": params.nu, "p_z": params.p_z,
            "protocol": params.protocol, "sifting_factor": analytic.sifting_factor(params),
            "secret_bits_per_pulse": analytic.vacuum_weak_decoy_rate(params),
            "infinite_decoy_bits_per_pulse": analytic.infinite_decoy_rate(params),
            "no_decoy_bits_per_pulse": analytic.optimal_rate(analytic.no_decoy_rate, params,
                                                             params.length_km)[0],
            "plob_bits_per_pulse": analytic.plob_bound(params),
            "transmittance": analytic.transmittance(params)}


def _echo(result: dict, as_json: bool) -> None:
    lines = (f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}" for k, v in result.items())
    click.echo(json.dumps(result) if as_json else "\n".join(lines))


def _run_other_protocol(protocol: str, request: SimulationRequest, as_json: bool) -> None:
    """A protocol that is not decoy-state BB84 runs through its registered runner."""
    module, _, function = PROTOCOLS[protocol].runner.partition(":")
    try:
        result = getattr(importlib.import_module(module), function)(request)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    _echo({k: _json_safe(v) for k, v in result.items()}, as_json)


def _link_params(preset_name, protocol, bound, changes, fixed_values, pulses) -> tuple[LinkParams, Choice | None]:
    """The preset with the options applied; optimised unless fixed or analytic-only."""
    params = preset(preset_name, protocol=protocol, deviation_bound=bound,
                    **{**PROTOCOLS[protocol].fixed, **changes})
    if fixed_values or not PROTOCOLS[protocol].simulated:
        return params, None
    choice = optimal_parameters(params, float(pulses), frozenset(n for n in ("mu", "nu") if n in changes))
    return choice.params, choice


@click.command("simulate")
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="gys",
              show_default=True, help="Named link parameter set.")
@click.option("--length-km", type=float, default=25.0, show_default=True)
@click.option("--mu", type=float, default=None, help="Signal intensity (held fixed; default: optimised).")
@click.option("--nu", type=float, default=None, help="Weak decoy intensity (held fixed; default: optimised).")
@click.option("--pulses", type=click.IntRange(min=1), default=None,
              help="Pulses to simulate (default: the protocol's own, 1e8; 1e10 for bbm92).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--eve", type=click.Choice(sorted(EVE_MODELS)), default=None)
@click.option("--eve-fraction", type=float, default=1.0, show_default=True)
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)), default=DEFAULT_PROTOCOL, show_default=True,
              help="efficient-bb84 keys from Z (q = p_z^2); symmetric-bb84 is the GLLP papers' (q = 1/2, analytic); "
                   "bbm92 entanglement-based with a CHSH test; repeater-chain a chain of quantum repeaters.")
@click.option("--segments", type=click.IntRange(min=1), default=8, show_default=True,
              help="repeater-chain: elementary links.")
@click.option("--link-fidelity", type=click.FloatRange(0.25, 1.0), default=0.99, show_default=True,
              help="repeater-chain: Werner fidelity of a fresh elementary pair.")
@click.option("--memory-t2-s", type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True,
              help="repeater-chain: memory coherence time T2 (all decay of coherence, at most 2 T1).")
@click.option("--memory-t1-s", type=click.FloatRange(min=0.0, min_open=True), default=math.inf,
              help="repeater-chain: memory amplitude-damping time T1 (default: infinite, no damping).")
@click.option("--rounds", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="repeater-chain: Monte Carlo rounds.")
@click.option("--deviation-bound", type=click.Choice(sorted(DEVIATIONS)), default="chernoff", show_default=True,
              help="Concentration bound of the decoy estimates: per-count Chernoff, or Lim et al.'s Hoeffding.")
@click.option("--fixed", "fixed_values", is_flag=True,
              help="Use the preset's intensities and probabilities instead of optimising them.")
@click.option("--optimize", "show_choice", is_flag=True,
              help="Print the optimised parameters for this length and pulse count, and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--analytic", "as_analytic", is_flag=True, help="Asymptotic rates, no simulation.")
@click.option("--sweep", "sweep_prefix", default=None, metavar="OUT_PREFIX",
              help="Write a rate-vs-distance plot to OUT_PREFIX.png and OUT_PREFIX.svg.")
def simulate(preset_name, length_km, mu, nu, pulses, seed, eve, eve_fraction, protocol, segments, link_fidelity,
             memory_t2_s, memory_t1_s, rounds, deviation_bound, fixed_values, show_choice, as_json, as_analytic,
             sweep_prefix):
    """Simulate a decoy-state BB84 link and report QBER, decoy bounds and key length.

    Intensities, their probabilities and the basis bias are optimised for the length and
    pulse count (Lim et al. 2014) unless --fixed; --mu/--nu hold those values fixed.
    """
    pulses = PROTOCOLS[protocol].default_pulses if pulses is None else pulses
    if not PROTOCOLS[protocol].decoy_bb84:
        _run_other_protocol(protocol, SimulationRequest(length_km, pulses, seed, eve, eve_fraction, segments,
                                                        link_fidelity, memory_t2_s, rounds, memory_t1_s),
                            as_json)
        return
    changes = {k: v for k, v in dict(length_km=length_km, mu=mu, nu=nu).items() if v is not None}
    try:
        params, choice = _link_params(preset_name, protocol, deviation_bound, changes,
                                      fixed_values or as_analytic, pulses)
        attack = EveSpec(eve, eve_fraction) if eve else None
    except InvalidLinkParams as exc:
        raise click.BadParameter(str(exc)) from None
    if show_choice:
        if choice is None:
            raise click.BadParameter("--optimize: nothing to optimise (--fixed or an analytic-only protocol)")
        _echo({"length_km": params.length_km, "pulses": pulses, "protocol": protocol,
               "deviation_bound": deviation_bound, **choice.as_dict()}, as_json)
        return
    if sweep_prefix:
        _write_sweep(params, pulses, seed, sweep_prefix, paths_to_stderr=as_json)
        if not as_json:
            return
    if as_analytic:
        _echo(_analytic(params), as_json)
        return
    if not PROTOCOLS[protocol].simulated:
        raise click.BadParameter(f"--protocol {protocol} has analytic rates only: add --analytic")
    stats = _run_with_progress(params, pulses, seed, attack)
    if as_json:
        data = stats.as_dict()
        click.echo(json.dumps({k: _json_safe(data[k]) for k in JSON_FIELDS + CLICK_FIELDS}
                              | {k: getattr(params, k) for k in PARAMETER_FIELDS}
                              | {"sifting_factor": analytic.sifting_factor(params), "optimized": choice is not None}))
    else:
        Console().print(_table(stats, params))
