"""Choose intensities, their probabilities and the basis bias for a link and frame size.

As Lim, Curty, Walenta, Xu, Zbinden (PRA 89, 022307 (2014), Sec. IV) do, the free
protocol parameters {mu, nu, p_mu, p_nu, p_z} are set to maximise the finite-key rate
for the given device, length and block size, evaluated on expected counts
(:mod:`adapters.qkd_sim.expected`).  mu3 (vacuum or weak vacuum) stays as configured.

The rate is zero over much of the box and only piecewise smooth (the bounds clip at 0
and 1/2), which defeats a local optimiser started at a bad point; a seeded differential
evolution (Storn and Price, J. Glob. Optim. 11, 341 (1997); scipy.optimize) searches
the box and polishes its best point with L-BFGS-B.  Below threshold the objective is
how far the key is from positive (:func:`adapters.qkd_sim.expected.key_rate_objective`),
so the search climbs towards a positive key even where there is none yet.  The starting parameters are part of the first generation and are
returned unless something strictly better is found: the choice is never worse than
the fixed values.  Results are cached per (parameters, pulses, fixed names, objective).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
from scipy import optimize

from adapters.qkd_sim.errors import InvalidLinkParams
from adapters.qkd_sim.expected import expected_objective
from adapters.qkd_sim.params import LinkParams

#: The free parameters and their search ranges.
BOUNDS: dict[str, tuple[float, float]] = {
    "mu": (0.05, 1.2), "nu": (0.002, 0.6), "p_mu": (0.02, 0.98), "p_nu": (0.01, 0.9), "p_z": (0.5, 0.995),
}
FREE_PARAMETERS = tuple(BOUNDS)
INVALID = -1.0  # objective of parameter sets the protocol does not allow (rates are << 1 per pulse)
Objective = Callable[[LinkParams, float], float]


@dataclasses.dataclass(frozen=True)
class Choice:
    """The chosen parameters and the expected finite-key rate they give (bits per pulse)."""

    params: LinkParams
    rate_bits_per_pulse: float
    start_rate_bits_per_pulse: float

    def as_dict(self) -> dict[str, float]:
        """The protocol parameters and both rates, JSON-ready."""
        p = self.params
        return {"mu": p.mu, "nu": p.nu, "mu3": p.mu3, "p_mu": p.p_mu, "p_nu": p.p_nu, "p_z": p.p_z,
                "expected_bits_per_pulse": self.rate_bits_per_pulse,
                "fixed_expected_bits_per_pulse": self.start_rate_bits_per_pulse}


def _candidate(params: LinkParams, names: tuple[str, ...], x: np.ndarray) -> LinkParams | None:
    try:
        return params.replace(**dict(zip(names, map(float, x))))
    except InvalidLinkParams:
        return None


def _score(objective: Objective, params: LinkParams, names, pulses: float, x: np.ndarray) -> float:
    candidate = _candidate(params, names, x)
    return INVALID if candidate is None else objective(candidate, pulses)


@functools.lru_cache(maxsize=256)
def optimal_parameters(params: LinkParams, pulses: float, fixed: frozenset[str] = frozenset(),
                       objective: Objective = expected_objective) -> Choice:
    """Maximise ``objective(params, pulses)`` over the free parameters not in ``fixed``."""
    unknown = set(fixed) - set(FREE_PARAMETERS)
    if unknown:
        raise InvalidLinkParams(f"fixed: unknown parameter(s) {sorted(unknown)}; choose from {FREE_PARAMETERS}")
    names = tuple(n for n in FREE_PARAMETERS if n not in fixed)
    start_rate = objective(params, pulses)
    if not names:
        return Choice(params, start_rate, start_rate)
    start = np.array([np.clip(getattr(params, n), *BOUNDS[n]) for n in names])
    result = optimize.differential_evolution(
        lambda x: -_score(objective, params, names, pulses, x), [BOUNDS[n] for n in names],
        x0=start, seed=0, popsize=10, maxiter=50, tol=1e-7, mutation=(0.5, 1.0), recombination=0.7,
        polish=True, init="sobol")
    best = _candidate(params, names, result.x)
    if best is None or -result.fun <= start_rate:
        return Choice(params, start_rate, start_rate)
    return Choice(best, float(-result.fun), start_rate)
