"""Protocols a simulated link can run, by name: what each keys from and how it sifts.

A small registry (name -> :class:`Protocol`): the decoy-state BB84 variants run by this
package's engine, and protocols of other link models (entanglement based, repeater
chains, :mod:`adapters.quantum_internet`) that ``qkms simulate`` runs through their own
``runner`` behind the same ``--protocol`` option.

* ``efficient-bb84`` (default): Lo, Chau, Ardehali, J. Cryptol. 18, 133 (2005), as in
  Lim et al. 2014.  Both parties pick Z with probability p_z; the key comes from Z
  coincidences only, so the sifting factor is q = p_z^2.  Simulated end to end.
* ``symmetric-bb84``: the BB84 of the GLLP and decoy-state papers (GLLP, QIC 4, 325
  (2004); Lo, Ma, Chen, PRL 94, 230504 (2005); Ma et al. PRA 72, 012326 (2005)): both
  bases with probability 1/2, key from every coincidence, q = 1/2.  Analytic rates
  only (their curves); the engine refuses it.
* ``bbm92``: entanglement-based BB84 with a CHSH test subset (Bennett, Brassard, Mermin,
  PRL 68, 557 (1992); model of Ma, Fung, Lo, PRA 76, 012307 (2007)).
* ``repeater-chain``: BB84 on pairs distributed by a chain of quantum repeaters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A protocol's name, what it fixes, its sifting factor and whether the engine runs it."""

    name: str
    summary: str
    sifting_factor: Callable[[object], float] | None = None
    fixed: dict = dataclasses.field(default_factory=dict)
    simulated: bool = True
    #: "module:function" taking a SimulationRequest and returning a JSON-ready dict, for a
    #: protocol that is not decoy-state BB84 (None: this package's engine runs it).
    runner: str | None = None
    #: ``qkms simulate``'s pulse count when --pulses is not given: enough for a
    #: finite-key length above zero at the default 25 km.
    default_pulses: int = 10**8

    @property
    def decoy_bb84(self) -> bool:
        """True for the variants that LinkParams and the decoy-state engine model."""
        return self.runner is None


PROTOCOLS: dict[str, Protocol] = {
    "efficient-bb84": Protocol(
        "efficient-bb84", "biased bases, key from Z coincidences (q = p_z^2)",
        lambda params: params.p_z ** 2),
    "symmetric-bb84": Protocol(
        "symmetric-bb84", "GLLP / Lo-Ma-Chen BB84: p_z = 1/2, key from both bases (q = 1/2)",
        lambda params: 0.5, fixed={"p_z": 0.5}, simulated=False),
    "bbm92": Protocol(
        "bbm92", "entanglement-based BB84 with CHSH monitoring (Ma, Fung, Lo 2007 model)",
        simulated=False, runner="adapters.quantum_internet.simulate:simulate_bbm92",
        # ~4e-5 sifted bits per pump pulse at 25 km: 1e8 pulses give ~1.6 kbit, too few for
        # the finite-key bound; 1e10 give ~24 kbit of key in about a second.
        default_pulses=10**10),
    "repeater-chain": Protocol(
        "repeater-chain", "BB84 on pairs from a quantum repeater chain with memories",
        simulated=False, runner="adapters.quantum_internet.simulate:simulate_repeater_chain"),
}
DEFAULT_PROTOCOL = "efficient-bb84"
