"""`qkms kek import-hsm` (qkms/cli_kek.py) on a SoftHSM2 token of each test's own: it
imports a kek.file's keys, leaves the file as it was and tells the operator what comes
next; every refusal is one line naming the setting or the file, never a key or the PIN."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kms.hsm import parse_key_labels
from kms.keyring import KeyringKeys, software_kek_id
from kms.sealing import new_kek_hex
from qkms.cli import main
from tests.kms.test_config import with_change
from tests.support.softhsm import SoftHsm


@pytest.fixture
def hsm_config(tmp_path: Path, softhsm: SoftHsm) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(with_change("kek", softhsm.settings(Path("hsm-keyring")))))
    return path


def import_hsm(config: Path, old: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["kek", "import-hsm", "--config", str(config), "--from-file", str(old), *extra])
    return result.exit_code, result.output


def test_it_imports_the_keyring_and_names_the_next_steps(tmp_path: Path, softhsm: SoftHsm, hsm_config: Path) -> None:
    keys = KeyringKeys(bytes.fromhex(new_kek_hex()), (bytes.fromhex(new_kek_hex()),))
    old = tmp_path / "kek.hex"
    old.write_bytes(keys.to_text())
    code, output = import_hsm(hsm_config, old, "--label-prefix", "moved")
    assert code == 0, output
    current = f"moved-{software_kek_id(keys.current).hex()}"
    assert f"2 KEK(s) imported into token qkms-test (current {current})" in output
    assert "qkms kek rotate" in output and f"destroy {old}" in output
    assert old.read_bytes() == keys.to_text()
    labels = parse_key_labels((tmp_path / "hsm-keyring").read_bytes())
    assert labels.current == current and labels.previous == (f"moved-{software_kek_id(keys.previous[0]).hex()}",)
    assert not any(secret in output for secret in (keys.current.hex(), keys.previous[0].hex(), softhsm.pin))


def test_refusals_are_one_line_naming_the_setting_or_file(tmp_path: Path, softhsm: SoftHsm, hsm_config: Path) -> None:
    kek_hex = new_kek_hex()
    old = tmp_path / "kek.hex"
    software_config = tmp_path / "software.yaml"
    software_config.write_text(yaml.safe_dump(with_change("kek", {"file": "kek.hex"})))
    malformed = tmp_path / "malformed"
    malformed.write_text(f"qkms-keyring-v1\ncurrent {kek_hex}\nprevious {kek_hex[:-2]}\n")
    short = tmp_path / "short"
    short.write_text(kek_hex[:-2])
    old.write_text(kek_hex)
    cases = [
        ((software_config, old), "kek.pkcs11: not set in this config (import-hsm imports into an HSM)"),
        ((hsm_config, tmp_path / "missing"), f"--from-file {tmp_path / 'missing'}: cannot read (No such file or directory)"),
        ((hsm_config, malformed), f"--from-file {malformed}: keyring line 3: must be 32 bytes given as hex, Base64 "
                                  "or raw bytes"),
        ((hsm_config, short), f"--from-file {short}: must be 32 bytes given as hex, Base64 or raw bytes"),
        ((hsm_config, old, "--label-prefix", "a b"), "--label-prefix: 1 to 47 of A-Z a-z 0-9 . _ -"),
    ]
    for args, message in cases:
        assert import_hsm(*args) == (1, f"Error: {message}\n")
    assert not (tmp_path / "hsm-keyring").exists()
    assert import_hsm(hsm_config, old)[0] == 0
    code, output = import_hsm(hsm_config, old)
    assert (code, output) == (1, f"Error: kek.pkcs11.keyring: {tmp_path / 'hsm-keyring'} exists already "
                                 "(import-hsm writes a new one)\n")
    assert kek_hex not in output and kek_hex[:-2] not in output
