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

from adapters.qkd_sim.decoy import DEVIATIONS
from adapters.qkd_sim.errors import InvalidLinkParams
from adapters.qkd_sim.protocols import DEFAULT_PROTOCOL, PROTOCOLS


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
    dead_time_s: float = 0.0
    mu: float = 0.48
    nu: float = 0.1
    mu3: float = 0.0
    p_mu: float = 0.7
    p_nu: float = 0.2
    p_z: float = 0.8
    pulse_rate_hz: float = 1e9
    pe_fraction: float = 0.0
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15
    qber_abort_threshold: float = 0.11
    ec_efficiency: float = 1.22
    deviation_bound: str = "chernoff"
    protocol: str = DEFAULT_PROTOCOL

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
        return (self.mu, self.nu, self.mu3)

    @property
    def intensity_probs(self) -> tuple[float, float, float]:
        """Probabilities of (signal, decoy, vacuum)."""
        return (self.p_mu, self.p_nu, self.p_vacuum)

    @property
    def dead_time_gates(self) -> int:
        """Detector dead time in pulse slots (gates): a click blinds its detector this many slots."""
        return math.ceil(self.dead_time_s * self.pulse_rate_hz - 1e-9)

    def replace(self, **changes: float) -> "LinkParams":
        """Return a validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _require(ok: bool, field: str, rule: str, value: float) -> None:
    if not ok:
        raise InvalidLinkParams(f"{field}: {rule} (got {value!r})")


def _check_finite(p: LinkParams) -> None:
    for f in dataclasses.fields(p):
        if f.type == "str":
            continue
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
    _require(p.mu3 >= 0.0, "mu3", "must be >= 0", p.mu3)
    _require(p.nu > p.mu3, "nu", f"must be > 0 and > mu3 ({p.mu3})", p.nu)
    # Lim et al. 2014 need mu1 > mu2 + mu3; with mu3 = 0 this is mu > nu.
    _require(p.mu > p.nu + p.mu3, "mu", f"must be > nu + mu3 ({p.nu + p.mu3:g})", p.mu)
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
    _require(p.dead_time_s >= 0.0, "dead_time_s", "must be >= 0", p.dead_time_s)


def _check_names(p: LinkParams) -> None:
    _require(p.deviation_bound in DEVIATIONS, "deviation_bound", f"choose one of {sorted(DEVIATIONS)}",
             p.deviation_bound)
    decoy = sorted(name for name, protocol in PROTOCOLS.items() if protocol.decoy_bb84)
    _require(p.protocol in decoy, "protocol", f"choose one of {decoy}", p.protocol)
    for name, value in PROTOCOLS.get(p.protocol, PROTOCOLS[DEFAULT_PROTOCOL]).fixed.items():
        _require(getattr(p, name) == value, name, f"must be {value} for protocol {p.protocol}",
                 getattr(p, name))

_CHECKS = (_check_finite, _check_probabilities, _check_intensities, _check_link, _check_names)

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
    # Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Sec. IV (their Fig. 1,
    # dedicated fibre): 0.2 dB/km, eta_Bob 10 %, dark count probability 6e-7 per
    # detector (so Y0 = 1 - (1 - 6e-7)^2), after-pulse probability 4e-2, e_mis 5e-3,
    # f_EC 1.16, eps_cor 1e-15, third intensity mu3 = 2e-4.  mu, nu, p_mu, p_nu, p_z are
    # the free parameters they optimise; the values here are only a starting point.
    "lim2014": LinkParams(
        alpha_db_per_km=0.2, detector_efficiency=0.10, dark_count_prob=1.0 - (1.0 - 6e-7) ** 2,
        misalignment_error=5e-3, afterpulse_prob=0.04, mu=0.5, nu=0.1, mu3=2e-4,
        ec_efficiency=1.16),
    # Toshiba's 1 GHz decoy-state BB84 with self-differencing InGaAs APDs: Lucamarini,
    # Patel, Dynes, Froehlich, Sharpe, Dixon, Yuan, Penty, Shields, Opt. Express 21, 24550
    # (2013): detection efficiency 20.5 %, dark count probability 2.1e-5 per gate (per
    # detector), after-pulse probability 5.25 %, intensities u = 0.425, v = 0.044,
    # w = 0.001 with p_v = 2^-7, p_w = 2^-8, X-basis probability 1/16 ("T12"); 1.09 Mbit/s
    # of secret key at 50 km.  Not stated there and derived by us: Bob's optical
    # transmission 0.521, from their 50 km signal count C_uZZ = 5.016e9 in a 1200 s
    # session at 0.2 dB/km with after-pulses; e_d 1.41 %, from their Q_uZZ = 4.26 % (see
    # tests/adapters/qkd_sim/test_params.py); dead time 0 (none stated).
    "toshiba-2013": LinkParams(
        alpha_db_per_km=0.2, eta_bob=0.521, detector_efficiency=0.205,
        dark_count_prob=1.0 - (1.0 - 2.1e-5) ** 2, misalignment_error=0.0141,
        afterpulse_prob=0.0525, mu=0.425, nu=0.044, mu3=0.001, p_mu=1.0 - 2.0 ** -7 - 2.0 ** -8,
        p_nu=2.0 ** -7, p_z=15.0 / 16.0, ec_efficiency=1.1),
}


def preset(name: str, **changes: float) -> LinkParams:
    """Return the named preset, optionally with fields changed (validated)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise InvalidLinkParams(
            f"preset: unknown name {name!r}; choose one of {sorted(PRESETS)}") from None
    return base.replace(**changes) if changes else base
