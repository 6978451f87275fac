"""``qkms simulate --protocol bbm92 | repeater-chain --json``: the fields the issue names."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qkms.cli_simulate import simulate


def _json(*args: str) -> dict:
    result = CliRunner().invoke(simulate, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bbm92_reports_s_qber_and_rate_with_its_default_pulses() -> None:
    data = _json("--protocol", "bbm92", "--length-km", "25")
    assert data["pulses"] == 10**10
    assert {"chsh_s", "qber", "secret_bits_per_pulse", "aborted", "abort_reason"} <= set(data)
    assert data["aborted"] is False and data["abort_reason"] is None
    assert 2.2 < data["chsh_s"] < 2.83 and 0.05 < data["qber"] < 0.09 and data["secret_bits_per_pulse"] > 0


def test_bbm92_with_intercept_resend_aborts_with_a_reason() -> None:
    data = _json("--protocol", "bbm92", "--length-km", "25", "--pulses", "10000000000", "--eve", "intercept-resend")
    assert data["aborted"] is True and data["chsh_s"] <= 2.0 and data["qber"] > 0.2
    assert "Bell value" in data["abort_reason"] and data["secret_bits_per_pulse"] == 0


def test_bbm92_refuses_an_attack_it_does_not_model() -> None:
    result = CliRunner().invoke(simulate, ["--protocol", "bbm92", "--eve", "pns", "--json"])
    assert result.exit_code == 2 and "intercept-resend" in result.output


def test_repeater_chain_reports_rates_against_plob() -> None:
    data = _json("--protocol", "repeater-chain", "--segments", "8", "--link-fidelity", "0.99",
                 "--length-km", "500", "--memory-t2-s", "1", "--rounds", "5000")
    assert {"fidelity", "qber", "pairs_per_s", "secret_bits_per_s", "plob_bits_per_s"} <= set(data)
    assert 0.9 < data["fidelity"] < 0.99 and data["qber"] < 0.06
    assert data["secret_bits_per_s"] > data["plob_bits_per_s"] > 0


def test_repeater_chain_takes_a_memory_t1() -> None:
    args = ("--protocol", "repeater-chain", "--length-km", "500", "--memory-t2-s", "1", "--rounds", "2000")
    plain, damped = _json(*args), _json(*args, "--memory-t1-s", "0.5")
    assert plain["memory_t1_s"] is None and damped["memory_t1_s"] == 0.5
    assert damped["fidelity"] < plain["fidelity"]
    result = CliRunner().invoke(simulate, [*args, "--memory-t1-s", "0.4", "--json"])
    assert result.exit_code == 2 and "memory_t1_s" in result.output
