"""Quantum channel between Alice's source and Bob's detectors, honest or attacked.

Every channel maps a chunk of emitted pulses (photon numbers, Alice's bits and bases)
to an :class:`Arrival`: how many photons reach Bob's detectors and which BB84 state
they carry.  Photon loss is binomial thinning per photon (each photon survives
independently), which is exact for a linear lossy channel acting on Poisson light
(Ma et al., PRA 72, 012326 (2005), eq. 3).

Attacks (chosen by name from :data:`EVE_MODELS`):

* ``intercept-resend``: on a fraction of pulses Eve measures all photons in a random
  basis and resends the same photon number in the state she found; when her basis is
  wrong, Bob errs half the time in the sifted basis, so the QBER rises by about
  fraction/4 (Bennett, Bessette, Brassard, Salvail, Smolin, J. Cryptol. 5, 3 (1992)).
* ``pns``: photon-number splitting (Brassard, Lütkenhaus, Mor, Sanders, PRL 85, 1330
  (2000)).  On a fraction of pulses Eve blocks single photons and keeps one photon of
  every multi-photon pulse, forwarding the rest through a channel whose transmittance
  t_E she tunes so that the *signal* gain equals the honest one.  The decoy gains then
  differ from the honest ones, which is what decoy states detect (Hwang, PRL 91,
  057901 (2003); Lo, Ma, Chen 2005).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from scipy import optimize, stats

from adapters.qkd_sim.analytic import transmittance
from adapters.qkd_sim.errors import InvalidLinkParams
from adapters.qkd_sim.params import LinkParams


@dataclasses.dataclass(frozen=True)
class Arrival:
    """Photons reaching Bob's detectors and the state (bit, basis) they carry."""

    photons: np.ndarray
    bits: np.ndarray
    bases: np.ndarray


@dataclasses.dataclass(frozen=True)
class EveSpec:
    """Which attack, on which fraction of pulses (0 < fraction <= 1)."""

    kind: str
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in EVE_MODELS:
            raise InvalidLinkParams(f"eve: unknown attack {self.kind!r}; choose one of {sorted(EVE_MODELS)}")
        if not 0.0 < self.fraction <= 1.0:
            raise InvalidLinkParams(f"eve_fraction: must be in (0, 1] (got {self.fraction!r})")


def thin(rng: np.random.Generator, photons: np.ndarray, survival: float) -> np.ndarray:
    """Binomial thinning: each photon survives independently with ``survival``."""
    out = np.zeros_like(photons)
    busy = np.flatnonzero(photons)
    out[busy] = rng.binomial(photons[busy], survival)
    return out


#: One way photons of a pulse reach Bob: (weight, probability generating function G(z)
#: of the number of photons arriving, probability that each goes to the detector of
#: Alice's bit).  A channel's pulses are a mixture of such modes.
Mode = tuple[float, Callable[[float], float], float]


class HonestChannel:
    """Fibre of transmittance 10^(-alpha L/10) followed by Bob's optics and detectors."""

    def __init__(self, params: LinkParams):
        self.eta = transmittance(params)
        self.misalignment = params.misalignment_error

    def transmit(self, rng, photons, bits, bases, intensity_idx) -> Arrival:
        """Thin every pulse by the total transmittance; states are untouched."""
        return Arrival(thin(rng, photons, self.eta), bits, bases)

    def _right(self, matched: bool) -> float:
        """Probability that a photon in Alice's state goes to the detector of her bit."""
        return 1.0 - self.misalignment if matched else 0.5

    def _poisson(self, mu: float) -> Callable[[float], float]:
        return lambda z: math.exp(-self.eta * mu * (1.0 - z))

    def modes(self, mu: float, matched: bool) -> list[Mode]:
        """Arrival modes of a pulse of intensity ``mu``: Poisson(eta mu) photons in Alice's state."""
        return [(1.0, self._poisson(mu), self._right(matched))]


class InterceptResend(HonestChannel):
    """Eve measures a fraction of pulses in a random basis at Alice's output and resends."""

    def __init__(self, params: LinkParams, fraction: float):
        super().__init__(params)
        self.fraction = fraction

    def transmit(self, rng, photons, bits, bases, intensity_idx) -> Arrival:
        """Attacked non-empty pulses carry Eve's result: right if bases agree, else random."""
        attacked = (rng.random(photons.size) < self.fraction) & (photons > 0)
        eve_basis = rng.integers(0, 2, photons.size, dtype=np.uint8)
        eve_bit = np.where(eve_basis == bases, bits, rng.integers(0, 2, photons.size, dtype=np.uint8))
        new_bits = np.where(attacked, eve_bit, bits).astype(np.uint8)
        new_bases = np.where(attacked, eve_basis, bases).astype(np.uint8)
        return Arrival(thin(rng, photons, self.eta), new_bits, new_bases)

    def modes(self, mu: float, matched: bool) -> list[Mode]:
        """Eve's basis equals Alice's (half the attacks): Alice's state; otherwise it equals
        Bob's when his differs from Alice's, and her random bit is Alice's half the time."""
        f, g = self.fraction, self._poisson(mu)
        resent = ([(0.5, g, 0.5)] if matched else
                  [(0.25, g, 1.0 - self.misalignment), (0.25, g, self.misalignment)])
        return [(1.0 - f, g, self._right(matched)), (0.5 * f, g, self._right(matched))] + [
            (f * w, pgf, rho) for w, pgf, rho in resent]


class PhotonNumberSplitting(HonestChannel):
    """Eve blocks single photons and splits multi-photon pulses on a fraction of pulses."""

    def __init__(self, params: LinkParams, fraction: float):
        super().__init__(params)
        self.fraction = fraction
        self.device_eta = params.eta_bob * params.detector_efficiency
        self.eve_transmittance = pns_transmittance(params.mu, self.eta, self.device_eta, fraction)

    def transmit(self, rng, photons, bits, bases, intensity_idx) -> Arrival:
        """Attacked pulses lose one photon to Eve; singles are blocked (n-1 = 0 photons)."""
        attacked = rng.random(photons.size) < self.fraction
        honest = thin(rng, photons, self.eta)
        split = thin(rng, np.maximum(photons - 1, 0), self.eve_transmittance * self.device_eta)
        return Arrival(np.where(attacked, split, honest), bits, bases)

    def modes(self, mu: float, matched: bool) -> list[Mode]:
        """Attacked pulses: n <= 1 photons give nothing, n >= 2 send n - 1 photons on."""
        t = self.eve_transmittance * self.device_eta

        def split(z: float) -> float:
            s = 1.0 - t * (1.0 - z)  # per forwarded photon; sum_{n>=2} p_n s^(n-1)
            tail = (math.exp(mu * s) - 1.0 - mu * s) / s if s > 1e-8 else mu * mu * s / 2.0
            return math.exp(-mu) * (1.0 + mu + tail)

        return [(1.0 - self.fraction, self._poisson(mu), self._right(matched)),
                (self.fraction, split, self._right(matched))]


def pns_gain(mu: float, eta: float, device_eta: float, fraction: float, t_eve: float) -> float:
    """Detection probability (no dark counts) of intensity ``mu`` under the PNS attack."""
    n = np.arange(1, 60)
    p_n = stats.poisson.pmf(n, mu)
    attacked = np.sum(p_n * (1.0 - (1.0 - t_eve * device_eta) ** (n - 1)))
    return (1.0 - fraction) * (1.0 - math.exp(-eta * mu)) + fraction * float(attacked)


def pns_transmittance(mu: float, eta: float, device_eta: float, fraction: float) -> float:
    """t_E in [0, 1] making the signal gain honest; 1 when Eve cannot hide (short links)."""
    honest = 1.0 - math.exp(-eta * mu)
    if pns_gain(mu, eta, device_eta, fraction, 1.0) <= honest:
        return 1.0
    return float(optimize.brentq(lambda t: pns_gain(mu, eta, device_eta, fraction, t) - honest,
                                 0.0, 1.0, xtol=1e-14))


EVE_MODELS = {
    "intercept-resend": InterceptResend,
    "pns": PhotonNumberSplitting,
}


def make_channel(params: LinkParams, eve: EveSpec | None) -> HonestChannel:
    """Build the honest channel or the named attack from :data:`EVE_MODELS`."""
    if eve is None:
        return HonestChannel(params)
    return EVE_MODELS[eve.kind](params, eve.fraction)
