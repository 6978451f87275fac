"""Closed-form model of entanglement-based QKD (BBM92) with a down-conversion source.

Ma, Fung, Lo, "Quantum key distribution with entangled photon sources", PRA 76, 012307
(2007) (MFL below).  A type-II SPDC source emits, per pump pulse, the two-mode state whose
photon-pair number n follows P(n) = (n+1) lam^n / (1+lam)^(n+2): two independent thermal
modes of mean ``lam`` each, so the mean pair number per pulse is mu = 2 lam.  Each arm has
an overall transmittance eta_A, eta_B (fibre and detector), threshold detectors with a
background probability Y0 per coincidence window, double clicks assigned a random bit
(squashing).  With e0 = 1/2 and e_d the intrinsic error (visibility V = 1 - 2 e_d):

    Q   = 1 - (1-Y0A)/(1+eta_A lam)^2 - (1-Y0B)/(1+eta_B lam)^2
            + (1-Y0A)(1-Y0B)/(1+eta_A lam+eta_B lam-eta_A eta_B lam)^2
    E Q = e0 Q - 2 (e0 - e_d) (1-dA)(1-dB) eta_A eta_B lam (1+lam)
            / ((1+eta_A lam)(1+eta_B lam)(1+eta_A lam+eta_B lam-eta_A eta_B lam))
    R  >= q Q [1 - f h(E) - h(E)]      (Koashi-Preskill: no decoys needed)

MFL's error expression carries no factor for background clicks in the correlated term;
the threshold-detector model it comes from has (1-dA)(1-dB), d = 1 - sqrt(1 - Y0) per
detector (a background click in the other detector turns a correct bit into a double
click).  The two differ by ~Y0 (1/2 - E)/E relative (1e-5 at Y0 = 1.7e-6); the tests
compare both.
Source in the middle: each arm has half the fibre; source at Alice's end: Alice's arm
has only her detector.  Bell test: with isotropic noise (visibility, background, an
intercept-resend eavesdropper) the correlation at analyser angle difference theta is
(1 - 2E) cos(2 theta), so CHSH gives S = 2 sqrt(2) (1 - 2E).
"""

from __future__ import annotations

import dataclasses
import math

from adapters.qkd_sim.entropy import binary_entropy

SOURCE_POSITIONS = ("middle", "alice")
E0 = 0.5
TSIRELSON = 2.0 * math.sqrt(2.0)
CLASSICAL_CHSH_BOUND = 2.0


@dataclasses.dataclass(frozen=True)
class Bbm92Params:
    """Source, arms, detectors and protocol of one entanglement-based link (units in names).

    Defaults: the fibre and detectors of the GYS reference set used by the decoy-state
    papers (alpha 0.21 dB/km, detector efficiency 4.5 %, e_d 3.3 %, Y0 1.7e-6 from 850 Hz
    dark counts per detector in a 1 ns window, f 1.22), source in the middle, mu = 0.1.
    """

    length_km: float = 25.0
    source_position: str = "middle"
    alpha_db_per_km: float = 0.21
    mean_pairs_per_pulse: float = 0.1
    visibility: float = 0.934
    detector_efficiency_a: float = 0.045
    detector_efficiency_b: float = 0.045
    dark_count_rate_hz: float = 850.0
    coincidence_window_s: float = 1e-9
    pulse_rate_hz: float = 1e9
    p_z: float = 0.5
    chsh_fraction: float = 0.1
    ec_efficiency: float = 1.22
    qber_abort_threshold: float = 0.11
    eps_sec: float = 1e-10
    eps_cor: float = 1e-15

    def __post_init__(self) -> None:
        checks = [("length_km", self.length_km >= 0.0, ">= 0"),
                  ("source_position", self.source_position in SOURCE_POSITIONS, f"one of {SOURCE_POSITIONS}"),
                  ("mean_pairs_per_pulse", self.mean_pairs_per_pulse > 0.0, "> 0"),
                  ("visibility", 0.0 <= self.visibility <= 1.0, "in [0, 1]"),
                  ("p_z", 0.0 < self.p_z < 1.0, "in (0, 1)"),
                  ("chsh_fraction", 0.0 < self.chsh_fraction < 1.0, "in (0, 1)")]
        checks += [(name, 0.0 < getattr(self, name) <= 1.0, "in (0, 1]")
                   for name in ("detector_efficiency_a", "detector_efficiency_b")]
        checks += [(name, getattr(self, name) >= 0.0, ">= 0") for name in ("dark_count_rate_hz", "alpha_db_per_km")]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name}: must be {rule} (got {getattr(self, name)!r})")

    @property
    def lam(self) -> float:
        """MFL's lambda: half the mean pair number (mean photon number of each thermal mode)."""
        return self.mean_pairs_per_pulse / 2.0

    @property
    def background_prob(self) -> float:
        """Y0 of one arm: either of its two detectors fires in the coincidence window."""
        return 1.0 - math.exp(-2.0 * self.dark_count_rate_hz * self.coincidence_window_s)

    @property
    def misalignment_error(self) -> float:
        """e_d = (1 - V) / 2."""
        return (1.0 - self.visibility) / 2.0

    def replace(self, **changes) -> "Bbm92Params":
        return dataclasses.replace(self, **changes)


def arm_transmittances(params: Bbm92Params) -> tuple[float, float]:
    """(eta_A, eta_B): fibre transmittance of each arm times its detector efficiency."""
    if params.source_position == "middle":
        half = 10.0 ** (-params.alpha_db_per_km * params.length_km / 20.0)
        return params.detector_efficiency_a * half, params.detector_efficiency_b * half
    return params.detector_efficiency_a, params.detector_efficiency_b * 10.0 ** (
        -params.alpha_db_per_km * params.length_km / 10.0)


def gain(params: Bbm92Params) -> float:
    """Coincidence probability per pulse Q_lambda (MFL)."""
    eta_a, eta_b = arm_transmittances(params)
    lam, y0 = params.lam, params.background_prob
    both = 1.0 + eta_a * lam + eta_b * lam - eta_a * eta_b * lam
    return 1.0 - (1.0 - y0) / (1.0 + eta_a * lam) ** 2 - (1.0 - y0) / (1.0 + eta_b * lam) ** 2 \
        + (1.0 - y0) ** 2 / both ** 2


def correlated_gain(params: Bbm92Params) -> float:
    """The correlated part C of the coincidences (E Q = Q/2 - V C) for a perfect source."""
    eta_a, eta_b = arm_transmittances(params)
    lam = params.lam
    both = 1.0 + eta_a * lam + eta_b * lam - eta_a * eta_b * lam
    no_background = 1.0 - params.background_prob  # (1 - dA)(1 - dB), both arms alike
    return no_background * eta_a * eta_b * lam * (1.0 + lam) / ((1.0 + eta_a * lam) * (1.0 + eta_b * lam) * both)


def qber(params: Bbm92Params, eve_fraction: float = 0.0) -> float:
    """E_lambda, with an intercept-resend attack on a fraction of one arm's photons.

    Eve measures in a random basis and resends: in the wrong basis (probability 1/2)
    she leaves a random bit, so the correlated part shrinks by (1 - fraction/2)."""
    q = gain(params)
    visibility = params.visibility * (1.0 - eve_fraction / 2.0)
    return (E0 * q - visibility * correlated_gain(params)) / q


def chsh_value(error_rate: float) -> float:
    """Expected CHSH S at the optimal angles for isotropic noise of QBER ``error_rate``."""
    return TSIRELSON * (1.0 - 2.0 * error_rate)


def asymptotic_rate(params: Bbm92Params, sifting_factor: float = 0.5, eve_fraction: float = 0.0) -> float:
    """Secret bits per pulse q Q [1 - f h(E) - h(E)] (MFL, Koashi-Preskill), clipped at 0.

    ``sifting_factor`` 1/2 is MFL's BB84 sifting; our runs key from ZZ coincidences
    outside the CHSH subset, q = p_z^2 (1 - chsh_fraction)."""
    e = qber(params, eve_fraction)
    rate = sifting_factor * gain(params) * (1.0 - params.ec_efficiency * binary_entropy(e) - binary_entropy(e))
    return max(0.0, float(rate))


def protocol_sifting_factor(params: Bbm92Params) -> float:
    """q of our runs: both in Z, outside the CHSH test subset."""
    return params.p_z ** 2 * (1.0 - params.chsh_fraction)
