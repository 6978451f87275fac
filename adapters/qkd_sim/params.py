"""Link parameters of the decoy-state BB84 simulation, validated once, immutable.

Protocol choice (stated once, used everywhere): efficient BB84 (Lo, Chau, Ardehali,
J. Cryptol. 18, 133 (2005)) with three intensities mu > nu > 0 = vacuum, as in
Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014).  Alice and Bob each pick
the Z basis with probability ``p_z``; key bits come from Z-basis coincidences of
all intensities, X-basis coincidences are used only to bound the phase error.
"""

from __future__ import annotations

import dataclasses
import math

from adapters.qkd_sim.errors import InvalidLinkParams


@dataclasses.dataclass(frozen=True)
class LinkParams:
    """Physical link, source and post-processing parameters (units in names)."""

    length_km: float = 25.0
    alpha_db_per_km: float = 0.21
    eta_bob: float = 1.0
    detector_efficiency: float = 0.045
    dark_count_prob: float = 1.7e-6
    misalignment_error: float = 0.033
    afterpulse_prob: float = 0.0
    mu: float = 0.48
    nu: float = 0.1
    p_mu: float = 0.7
    p_nu: float = 0.2
    p_z: float = 0.8
    pulse_rate_hz: float = 1e9
    pe_fraction: float = 0.05
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    qber_abort_threshold: float = 0.11
    ec_efficiency: float = 1.22

    def __post_init__(self) -> None:
        for check in _CHECKS:
            check(self)

    @property
    def p_vacuum(self) -> float:
        """Probability of sending the vacuum intensity."""
        return 1.0 - self.p_mu - self.p_nu

    @property
    def intensities(self) -> tuple[float, float, float]:
        """Mean photon numbers (signal, decoy, vacuum), in the order used everywhere."""
        return (self.mu, self.nu, 0.0)

    @property
    def intensity_probs(self) -> tuple[float, float, float]:
        """Probabilities of (signal, decoy, vacuum)."""
        return (self.p_mu, self.p_nu, self.p_vacuum)

    def replace(self, **changes: float) -> "LinkParams":
        """Return a validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _require(ok: bool, field: str, rule: str, value: float) -> None:
    if not ok:
        raise InvalidLinkParams(f"{field}: {rule} (got {value!r})")


def _check_finite(p: LinkParams) -> None:
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        _require(isinstance(value, (int, float)) and math.isfinite(value),
                 f.name, "must be a finite number", value)


def _check_probabilities(p: LinkParams) -> None:
    for name in ("eta_bob", "detector_efficiency"):
        _require(0.0 < getattr(p, name) <= 1.0, name, "must be in (0, 1]", getattr(p, name))
    for name in ("dark_count_prob", "afterpulse_prob", "pe_fraction"):
        _require(0.0 <= getattr(p, name) < 1.0, name, "must be in [0, 1)", getattr(p, name))
    _require(0.0 <= p.misalignment_error < 0.5, "misalignment_error", "must be in [0, 0.5)",
             p.misalignment_error)
    _require(0.0 < p.p_z < 1.0, "p_z", "must be in (0, 1)", p.p_z)
    _require(0.0 < p.qber_abort_threshold <= 0.5, "qber_abort_threshold", "must be in (0, 0.5]",
             p.qber_abort_threshold)
    for name in ("eps_sec", "eps_cor"):
        _require(0.0 < getattr(p, name) < 1.0, name, "must be in (0, 1)", getattr(p, name))


def _check_intensities(p: LinkParams) -> None:
    _require(p.nu > 0.0, "nu", "must be > 0", p.nu)
    # Lim et al. 2014 need mu1 > mu2 + mu3; with mu3 = 0 this is mu > nu.
    _require(p.mu > p.nu, "mu", f"must be > nu ({p.nu})", p.mu)
    _require(p.mu <= 10.0, "mu", "must be <= 10 photons per pulse", p.mu)
    _require(0.0 < p.p_mu < 1.0, "p_mu", "must be in (0, 1)", p.p_mu)
    _require(0.0 < p.p_nu < 1.0, "p_nu", "must be in (0, 1)", p.p_nu)
    _require(p.p_vacuum > 0.0, "p_nu", f"p_mu + p_nu must be < 1 (p_mu={p.p_mu})", p.p_nu)


def _check_link(p: LinkParams) -> None:
    _require(p.length_km >= 0.0, "length_km", "must be >= 0", p.length_km)
    _require(p.alpha_db_per_km >= 0.0, "alpha_db_per_km", "must be >= 0", p.alpha_db_per_km)
    _require(p.pulse_rate_hz > 0.0, "pulse_rate_hz", "must be > 0", p.pulse_rate_hz)
    _require(p.ec_efficiency >= 1.0, "ec_efficiency", "must be >= 1 (Shannon limit)",
             p.ec_efficiency)


_CHECKS = (_check_finite, _check_probabilities, _check_intensities, _check_link)

PRESETS: dict[str, LinkParams] = {
    # Gobby, Yuan, Shields, APL 84, 3762 (2004), as tabulated in Ma, Qi, Zhao, Lo,
    # PRA 72, 012326 (2005), Table I: alpha 0.21 dB/km, eta_Bob 4.5 %, e_d 3.3 %,
    # Y0 1.7e-6, f(e) 1.22.  mu = 0.48 is the optimum reported there; nu = 0.1 and the
    # intensity/basis probabilities are our finite-size choices (see docs).
    # eta_Bob = 4.5 % there already includes the detector, so the optics are 1.0.
    "gys": LinkParams(),
    # Illustrative only (not a published device): SNSPD-like receiver, 0.2 dB/km
    # fibre, 80 % detection, 1e-8 dark counts per gate, 1 % misalignment,
    # and a Cascade-like EC efficiency of 1.1.
    "snspd-illustrative": LinkParams(
        alpha_db_per_km=0.2, eta_bob=0.9, detector_efficiency=0.8,
        dark_count_prob=1e-8, misalignment_error=0.01, mu=0.5, nu=0.15,
        ec_efficiency=1.1),
}


def preset(name: str, **changes: float) -> LinkParams:
    """Return the named preset, optionally with fields changed (validated)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise InvalidLinkParams(
            f"preset: unknown name {name!r}; choose one of {sorted(PRESETS)}") from None
    return base.replace(**changes) if changes else base
