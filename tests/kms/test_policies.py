"""Link policies (kms/policies.py): which pools a hop uses, brute-forced over small views."""

from __future__ import annotations

import itertools

import pytest

from kms.policies import ALLOWED, PROVIDES, PoolView, allowed, capacity, choose

BITS = (0, 256, 1000, 4096)
NEEDED = 256


def views(qkd_bits: int, pqc_bits: int, qkd_serving: bool = True) -> dict[str, PoolView]:
    return {"qkd": PoolView(qkd_bits, qkd_serving), "pqc": PoolView(pqc_bits)}


@pytest.mark.parametrize("policy", sorted(ALLOWED))
def test_a_choice_is_always_allowed_meets_requirements_and_fits(policy: str) -> None:
    for qkd, pqc, serving, threshold in itertools.product(BITS, BITS, (True, False), (0, 2048)):
        for requires in (frozenset(), frozenset({"qkd"}), frozenset({"pqc"}), frozenset({"qkd", "pqc"})):
            seen = views(qkd, pqc, serving)
            material = choose(policy, seen, NEEDED, threshold, requires)
            if material is None:
                assert not any(requires <= PROVIDES[m] and capacity(m, seen) >= NEEDED for m in ALLOWED[policy])
            else:
                assert allowed(policy, material) and requires <= PROVIDES[material]
                assert capacity(material, seen) >= NEEDED


def test_qkd_then_pqc_falls_back_and_returns() -> None:
    assert choose("qkd-then-pqc", views(4096, 4096), NEEDED) == "qkd"
    assert choose("qkd-then-pqc", views(4096, 4096, qkd_serving=False), NEEDED) == "pqc", "source down"
    assert choose("qkd-then-pqc", views(1000, 4096), NEEDED, fallback_below_bits=2048) == "pqc", "below threshold"
    assert choose("qkd-then-pqc", views(0, 4096), NEEDED) == "pqc", "QKD pool empty"
    assert choose("qkd-then-pqc", views(4096, 0, qkd_serving=False), NEEDED) == "qkd", "PQC empty: QKD bits left"
    assert choose("qkd-then-pqc", views(4096, 4096), NEEDED, fallback_below_bits=2048) == "qkd", "recovered"


def test_requirements_pick_the_material_that_includes_them() -> None:
    assert choose("qkd-then-pqc", views(4096, 4096), NEEDED, requires=frozenset({"pqc"})) == "pqc"
    assert choose("qkd-then-pqc", views(4096, 4096, False), NEEDED, requires=frozenset({"qkd"})) == "qkd"
    assert choose("pqc-only", views(4096, 4096), NEEDED, requires=frozenset({"qkd"})) is None
    assert choose("hybrid", views(4096, 4096), NEEDED, requires=frozenset({"qkd", "pqc"})) == "hybrid"
    assert choose("qkd-then-pqc", views(4096, 4096), NEEDED, requires=frozenset({"qkd", "pqc"})) is None


def test_hybrid_needs_both_pools() -> None:
    assert capacity("hybrid", views(4096, 300)) == 300
    assert choose("hybrid", views(4096, 0), NEEDED) is None
    assert choose("hybrid", {"qkd": PoolView(4096)}, NEEDED) is None


def test_receivers_check_materials_against_their_policy() -> None:
    assert allowed("qkd-then-pqc", "pqc") and allowed("qkd-then-pqc", "qkd")
    assert not allowed("qkd-only", "pqc") and not allowed("pqc-only", "hybrid") and not allowed("hybrid", "qkd")
