import pytest

from adapters.qkd_sim import InvalidLinkParams, LinkParams, preset


def test_gys_preset_matches_ma_et_al_table_1():
    # Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005), Table I (GYS: Gobby, Yuan, Shields 2004).
    p = preset("gys")
    assert (p.alpha_db_per_km, p.eta_bob * p.detector_efficiency, p.misalignment_error,
            p.dark_count_prob, p.ec_efficiency) == (0.21, 0.045, 0.033, 1.7e-6, 1.22)


@pytest.mark.parametrize("field, value, message", [
    ("mu", 0.05, "mu: must be > nu"),
    ("nu", 0.0, "nu: must be > 0"),
    ("p_nu", 0.35, r"p_mu \+ p_nu must be < 1"),
    ("misalignment_error", 0.6, "misalignment_error"),
    ("length_km", -1.0, "length_km"),
    ("eps_cor", 0.0, "eps_cor"),
    ("detector_efficiency", float("nan"), "detector_efficiency: must be a finite number"),
])
def test_invalid_fields_are_named(field, value, message):
    with pytest.raises(InvalidLinkParams, match=message):
        LinkParams(**{field: value})


def test_unknown_preset_lists_choices():
    with pytest.raises(InvalidLinkParams, match="gys"):
        preset("nope")


def test_params_are_immutable():
    with pytest.raises(Exception):
        preset("gys").mu = 0.3
