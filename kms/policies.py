"""Link policies: from which pool(s) one hop of a key draws its material.

A link has a pool per source role (``qkd``, ``pqc``); its policy says which serve:

* ``qkd-only``: the QKD pool;
* ``pqc-only``: the PQC pool;
* ``hybrid``: both, equal parts, combined per key with CatKDF (kms/catkdf.py);
* ``qkd-then-pqc``: the QKD pool while its source serves and it holds at least
  ``fallback_below_bits`` (and the request), else the PQC pool; back to QKD when it
  recovers.

The sending end of a hop chooses (:func:`choose`); the receiving end checks the choice
against its own view of the link's policy (:func:`allowed`). An SAE's requirement
(``qkms_require_qkd`` / ``qkms_require_pqc``) restricts the choice to material that
includes that kind. Pure functions over plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Material = Literal["qkd", "pqc", "hybrid"]
#: What each policy lets a hop use.
ALLOWED: dict[str, tuple[Material, ...]] = {"qkd-only": ("qkd",), "pqc-only": ("pqc",), "hybrid": ("hybrid",),
                                            "qkd-then-pqc": ("qkd", "pqc")}
#: Which kinds of source each material includes (what an SAE can require).
PROVIDES: dict[Material, frozenset[str]] = {"qkd": frozenset({"qkd"}), "pqc": frozenset({"pqc"}),
                                            "hybrid": frozenset({"qkd", "pqc"})}
#: The pools each material is carved from.
POOLS: dict[Material, tuple[str, ...]] = {"qkd": ("qkd",), "pqc": ("pqc",), "hybrid": ("qkd", "pqc")}


#: ``extension_mandatory`` options an SAE demands a kind of source with (docs/pqc.md).
REQUIREMENT_EXTENSIONS = {"qkms_require_qkd": "qkd", "qkms_require_pqc": "pqc"}


def requirement_names(requires: frozenset[str]) -> list[str]:
    """The ``extension_mandatory`` names of the kinds in ``requires``, sorted."""
    return sorted(name for name, kind in REQUIREMENT_EXTENSIONS.items() if kind in requires)


@dataclass(frozen=True)
class PoolView:
    """What the sender of a hop can draw from one pool now: unused bits, and whether its
    source serves (up or degraded, recently reported)."""

    bits: int
    serving: bool = True


def capacity(material: Material, views: Mapping[str, PoolView]) -> int:
    """Bits a hop can carry with ``material`` (hybrid: equal parts of both pools)."""
    return min(views[role].bits if role in views else 0 for role in POOLS[material])


def _preference(policy: str, views: Mapping[str, PoolView], needed_bits: int, fallback_below_bits: int) -> list:
    if policy != "qkd-then-pqc":
        return list(ALLOWED[policy])
    qkd = views.get("qkd", PoolView(0, False))
    qkd_serves = qkd.serving and qkd.bits >= max(needed_bits, fallback_below_bits)
    return ["qkd", "pqc"] if qkd_serves else ["pqc", "qkd"]


def choose(policy: str, views: Mapping[str, PoolView], needed_bits: int, fallback_below_bits: int = 0,
           requires: frozenset[str] = frozenset()) -> Material | None:
    """The material a hop of ``policy`` uses for ``needed_bits`` when its pools look like
    ``views`` (by role), meeting ``requires``; None if none can."""
    for material in _preference(policy, views, needed_bits, fallback_below_bits):
        if requires <= PROVIDES[material] and capacity(material, views) >= needed_bits:
            return material
    return None


def allowed(policy: str, material: str) -> bool:
    """Whether a hop over a link of ``policy`` may use ``material``."""
    return material in ALLOWED[policy]
