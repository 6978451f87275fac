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


def test_toshiba_2013_preset_reproduces_the_published_50_km_counts():
    # Lucamarini et al., Opt. Express 21, 24550 (2013): at 50 km a 1200 s session at 1 GHz
    # gave C_uZZ = 5.016e9 signal counts in the Z basis with Q_uZZ = 4.26 %.  Bob's optics
    # (0.521) and e_d (1.41 %) of the preset are derived from these two numbers.
    from adapters.qkd_sim.expected import click_and_error_probs

    p = preset("toshiba-2013", length_km=50.0)
    click, error, _ = click_and_error_probs(p)
    sent_uzz = 1e9 * 1200 * p.p_mu * p.p_z ** 2
    assert click[0] * sent_uzz == pytest.approx(5.016e9, rel=0.01)
    assert error[0] / click[0] == pytest.approx(0.0426, abs=0.001)


def test_lim2014_preset_is_their_fig_1_device():
    # Lim et al., PRA 89, 022307 (2014), Sec. IV: eta_Bob 10 %, p_dc 6e-7 per detector,
    # p_ap 4e-2, 0.2 dB/km, e_mis 5e-3, f_EC 1.16, mu3 = 2e-4.
    p = preset("lim2014")
    assert (p.detector_efficiency * p.eta_bob, p.afterpulse_prob, p.alpha_db_per_km, p.misalignment_error,
            p.ec_efficiency, p.mu3) == (0.10, 0.04, 0.2, 5e-3, 1.16, 2e-4)
    assert 1.0 - (1.0 - p.dark_count_prob) ** 0.5 == pytest.approx(6e-7)
