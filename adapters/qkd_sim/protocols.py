"""Protocols a simulated link can run, by name: what each keys from and how it sifts.

A small registry (name -> :class:`Protocol`), so that further protocols (entanglement
based, repeater chains) join behind the same ``--protocol`` option and config key.

* ``efficient-bb84`` (default): Lo, Chau, Ardehali, J. Cryptol. 18, 133 (2005), as in
  Lim et al. 2014.  Both parties pick Z with probability p_z; the key comes from Z
  coincidences only, so the sifting factor is q = p_z^2.  Simulated end to end.
* ``symmetric-bb84``: the BB84 of the GLLP and decoy-state papers (GLLP, QIC 4, 325
  (2004); Lo, Ma, Chen, PRL 94, 230504 (2005); Ma et al. PRA 72, 012326 (2005)): both
  bases with probability 1/2, key from every coincidence, q = 1/2.  Analytic rates
  only (their curves); the engine refuses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A protocol's name, what it fixes, its sifting factor and whether the engine runs it."""

    name: str
    summary: str
    sifting_factor: Callable[[object], float]
    fixed: dict = dataclasses.field(default_factory=dict)
    simulated: bool = True


PROTOCOLS: dict[str, Protocol] = {
    "efficient-bb84": Protocol(
        "efficient-bb84", "biased bases, key from Z coincidences (q = p_z^2)",
        lambda params: params.p_z ** 2),
    "symmetric-bb84": Protocol(
        "symmetric-bb84", "GLLP / Lo-Ma-Chen BB84: p_z = 1/2, key from both bases (q = 1/2)",
        lambda params: 0.5, fixed={"p_z": 0.5}, simulated=False),
}
DEFAULT_PROTOCOL = "efficient-bb84"
