import json
import sys

import pytest
from click.testing import CliRunner

from qkms.cli_simulate import JSON_FIELDS, simulate


def _invoke(*args):
    result = CliRunner().invoke(simulate, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_json_fields_present_and_sane():
    out = _invoke("--json", "--preset", "snspd-illustrative", "--pulses", "8000000", "--seed", "3")
    data = json.loads(out.stdout)
    assert set(JSON_FIELDS) <= set(data)
    assert data["pulses"] == 8_000_000 and data["length_km"] == 25.0
    assert 0.0 < data["qber"] < 0.05 and data["sifted_bits"] > 100_000
    assert data["aborted"] is False and data["secret_bits"] > 0
    assert data["secret_bits_per_pulse"] == pytest.approx(data["secret_bits"] / 8_000_000)
    assert data["y1_lower"] > 0 and 0 < data["e1_upper"] < 0.5
    assert 0 < data["click_rate_hz"] < data["max_click_rate_hz"] == 2e9  # two detectors, no dead time


def test_json_eve_reports_abort_reason():
    out = _invoke("--json", "--pulses", "2000000", "--preset", "snspd-illustrative",
                  "--eve", "intercept-resend", "--eve-fraction", "1.0")
    data = json.loads(out.stdout)
    assert data["aborted"] and "possible eavesdropper" in data["abort_reason"]


def test_analytic_fields():
    data = json.loads(_invoke("--analytic", "--json", "--length-km", "50").stdout)
    assert 0 < data["secret_bits_per_pulse"] < data["plob_bits_per_pulse"]
    assert data["mu"] == 0.48
    # the rate says which sifting factor it uses: efficient BB84 keeps p_z^2
    assert (data["protocol"], data["p_z"], data["sifting_factor"]) == ("efficient-bb84", 0.8, pytest.approx(0.64))


def test_symmetric_bb84_uses_the_gllp_sifting_factor():
    # Lo, Ma, Chen 2005 and GLLP key from both bases of a symmetric BB84: q = 1/2.
    efficient = json.loads(_invoke("--analytic", "--json", "--length-km", "50").stdout)
    data = json.loads(_invoke("--analytic", "--json", "--length-km", "50", "--protocol", "symmetric-bb84").stdout)
    assert (data["protocol"], data["p_z"], data["sifting_factor"]) == ("symmetric-bb84", 0.5, 0.5)
    ratio = data["infinite_decoy_bits_per_pulse"] / efficient["infinite_decoy_bits_per_pulse"]
    assert ratio == pytest.approx(0.5 / 0.64)
    result = CliRunner().invoke(simulate, ["--protocol", "symmetric-bb84", "--pulses", "1000"])
    assert result.exit_code != 0 and "analytic rates only" in result.output


def test_no_options_give_a_positive_key():
    # GYS, 25 km, the default pulse count: the optimised parameters leave a key.
    data = json.loads(_invoke("--json").stdout)
    assert data["aborted"] is False and data["secret_bits"] > 0 and data["optimized"] is True
    assert data["sifting_factor"] == pytest.approx(data["p_z"] ** 2)


def test_optimize_prints_the_choice_and_fixed_keeps_the_preset():
    choice = json.loads(_invoke("--optimize", "--json", "--pulses", "100000000").stdout)
    assert choice["expected_bits_per_pulse"] > 0 >= choice["fixed_expected_bits_per_pulse"]
    assert choice["mu"] != 0.48 and 0.5 <= choice["p_z"] < 1.0
    fixed = json.loads(_invoke("--json", "--fixed", "--pulses", "1000000", "--length-km", "10").stdout)
    assert (fixed["mu"], fixed["p_mu"], fixed["p_z"], fixed["optimized"]) == (0.48, 0.7, 0.8, False)
    held = json.loads(_invoke("--optimize", "--json", "--mu", "0.3", "--pulses", "100000000").stdout)
    assert held["mu"] == 0.3 and held["nu"] != 0.1


def test_table_output():
    out = _invoke("--pulses", "1000000", "--length-km", "10")
    assert "QBER" in out.stdout and "finite-key length" in out.stdout


def test_bad_parameter_is_reported():
    result = CliRunner().invoke(simulate, ["--mu", "0.01", "--fixed"])
    assert result.exit_code != 0 and "mu: must be > nu" in result.output


def test_sweep_writes_png_and_svg(tmp_path):
    prefix = tmp_path / "rate"
    _invoke("--sweep", str(prefix), "--pulses", "200000", "--preset", "snspd-illustrative")
    assert (tmp_path / "rate.png").stat().st_size > 1000
    assert (tmp_path / "rate.svg").read_text().startswith("<?xml")


def test_sweep_without_the_plot_extra_is_a_one_line_error(tmp_path, monkeypatch):
    # None in sys.modules makes `import matplotlib` fail as in an install without it.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    result = CliRunner().invoke(simulate, ["--sweep", str(tmp_path / "rate"), "--pulses", "200000"])
    assert result.exit_code == 1 and not isinstance(result.exception, ModuleNotFoundError)
    assert result.output == "Error: a rate-vs-distance plot needs matplotlib: pip install 'qkms[plot]'\n"
    assert list(tmp_path.iterdir()) == []
