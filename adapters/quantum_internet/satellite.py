"""Satellite downlinks: loss over a pass, and the pass schedule.

Geometry: a circular orbit of altitude h over a spherical Earth (R = 6371 km), an
overhead pass (Earth's rotation neglected): at central angle phi from the station the
range is d = sqrt(R^2 + (R+h)^2 - 2 R (R+h) cos phi) and the elevation e has
sin e = ((R+h) cos phi - R) / d; phi = omega t with omega = sqrt(GM / (R+h)^3).
Loss (each factor a transmittance):

* diffraction/beam spread: a beam of full divergence theta widened by pointing jitter
  sigma (long-term spot: theta_eff = sqrt(theta^2 + (2 sigma)^2)) lights a spot of
  diameter d theta_eff, of which the receiver of diameter D catches (D / (d theta_eff))^2;
* atmosphere: T_zenith^(1 / sin e) (plane-parallel air mass);
* receiver optics and detectors: a constant efficiency.

Key: asymptotic decoy-state BB84 (vacuum + weak decoy, Ma et al. PRA 72, 012326 (2005),
the package's :mod:`adapters.qkd_sim.analytic`) at the pass's transmittance, as Micius
ran its downlinks (Liao et al., Nature 549, 43 (2017): ~500 km orbit, decoy-state BB84,
kilohertz key rates at up to 1200 km).  Passes come on a configured schedule; key is
made only during a pass.  The satellite is a trusted node relaying between two ground
stations (Liao et al., PRL 120, 030501 (2018)); Yin et al., Nature 582, 501 (2020) ran
entanglement-based QKD from Micius to two stations 1120 km apart.
"""

from __future__ import annotations

import dataclasses
import math

from adapters.qkd_sim.analytic import vacuum_weak_decoy_rate
from adapters.qkd_sim.params import LinkParams
from adapters.quantum_internet.pass_schedule import DEFAULT_PASS_INTERVAL_S, PassSchedule

EARTH_RADIUS_KM = 6371.0
GM_KM3_PER_S2 = 398_600.4418


@dataclasses.dataclass(frozen=True)
class SatelliteParams:
    """A downlink and its schedule (:class:`PassSchedule`: a pass of ``scheduled_pass_s``
    from ``pass_offset_s`` on, every ``pass_interval_s``).  Cited: the altitude (Micius,
    Liao et al. 2017) and the 100 MHz decoy-state source with mu 0.8 / nu 0.1 of that
    experiment's kind; the optics, atmosphere and detector figures are assumptions of
    this model (settings)."""

    altitude_km: float = 500.0
    divergence_urad: float = 10.0
    pointing_jitter_urad: float = 1.0
    receiver_aperture_m: float = 1.0
    zenith_transmittance: float = 0.8
    receiver_efficiency: float = 0.1
    min_elevation_deg: float = 10.0
    pulse_rate_hz: float = 1e8
    mu: float = 0.8
    nu: float = 0.1
    dark_count_prob: float = 1e-6
    misalignment_error: float = 0.01
    pass_interval_s: float = DEFAULT_PASS_INTERVAL_S
    pass_duration_s: float | None = None
    pass_offset_s: float = 0.0

    def __post_init__(self) -> None:
        _ = self.schedule  # its checks name a bad schedule setting

    @property
    def angular_speed_rad_s(self) -> float:
        return math.sqrt(GM_KM3_PER_S2 / (EARTH_RADIUS_KM + self.altitude_km) ** 3)

    @property
    def max_central_angle_rad(self) -> float:
        """Central angle at which the satellite sinks below the minimum elevation."""
        e = math.radians(self.min_elevation_deg)
        return math.acos(EARTH_RADIUS_KM * math.cos(e) / (EARTH_RADIUS_KM + self.altitude_km)) - e

    @property
    def geometric_pass_s(self) -> float:
        """How long an overhead pass stays above the minimum elevation."""
        return 2.0 * self.max_central_angle_rad / self.angular_speed_rad_s

    @property
    def scheduled_pass_s(self) -> float:
        return self.pass_duration_s or self.geometric_pass_s

    @property
    def schedule(self) -> PassSchedule:
        return PassSchedule(self.pass_interval_s, self.scheduled_pass_s, self.pass_offset_s)

    def replace(self, **changes) -> "SatelliteParams":
        return dataclasses.replace(self, **changes)


def range_and_elevation(params: SatelliteParams, central_angle_rad: float) -> tuple[float, float]:
    """(range in km, elevation in degrees) at a central angle from the station."""
    r, s = EARTH_RADIUS_KM, EARTH_RADIUS_KM + params.altitude_km
    d = math.sqrt(r * r + s * s - 2.0 * r * s * math.cos(central_angle_rad))
    return d, math.degrees(math.asin((s * math.cos(central_angle_rad) - r) / d))


def downlink_transmittance(params: SatelliteParams, range_km: float, elevation_deg: float) -> float:
    """Beam spread (diffraction and pointing), atmosphere and receiver, multiplied."""
    theta = math.hypot(params.divergence_urad, 2.0 * params.pointing_jitter_urad) * 1e-6
    geometric = min(1.0, (params.receiver_aperture_m / (range_km * 1e3 * theta)) ** 2)
    atmosphere = params.zenith_transmittance ** (1.0 / math.sin(math.radians(elevation_deg)))
    return geometric * atmosphere * params.receiver_efficiency


def secret_bits_per_pulse(params: SatelliteParams, transmittance: float) -> float:
    """Asymptotic vacuum + weak decoy rate (efficient BB84, p_z = 0.8) at this transmittance."""
    link = LinkParams(length_km=0.0, eta_bob=transmittance, detector_efficiency=1.0,
                      dark_count_prob=params.dark_count_prob, misalignment_error=params.misalignment_error,
                      mu=params.mu, nu=params.nu, pulse_rate_hz=params.pulse_rate_hz)
    return vacuum_weak_decoy_rate(link)


def link_at(params: SatelliteParams, fraction: float) -> dict[str, float]:
    """Range, elevation, loss and key rate at a point of a pass (scheduled time mapped onto
    the geometric pass, so a short configured pass sweeps the whole sky)."""
    angle = (2.0 * fraction - 1.0) * params.max_central_angle_rad
    range_km, elevation = range_and_elevation(params, angle)
    eta = downlink_transmittance(params, range_km, elevation)
    rate = secret_bits_per_pulse(params, eta)
    return {"range_km": range_km, "elevation_deg": elevation, "loss_db": -10.0 * math.log10(eta),
            "secret_bits_per_pulse": rate, "secret_rate_bps": rate * params.pulse_rate_hz}
