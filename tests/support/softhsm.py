"""A SoftHSM2 token of its own for each test: a softhsm2.conf and token directory under
the test's tmp_path (SOFTHSM2_CONF points at them), so nothing outside it is touched."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Debian's softhsm2 package (``make system-deps`` installs it).
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN_ENV = "QKMS_TEST_HSM_PIN"


def require_softhsm() -> None:
    if shutil.which("softhsm2-util") is None or not SOFTHSM_MODULE.is_file():
        pytest.skip("SoftHSM2 is not installed (Debian softhsm2: make system-deps)")


@dataclass(frozen=True)
class SoftHsm:
    """One initialised token; ``pin`` is random per test and never printed."""

    conf: Path
    token_label: str
    pin: str = field(repr=False)
    module: Path = SOFTHSM_MODULE
    pin_env: str = PIN_ENV

    def env(self) -> dict[str, str]:
        """What a process using the token needs in its environment."""
        return {"SOFTHSM2_CONF": str(self.conf), self.pin_env: self.pin}

    def settings(self, keyring: Path) -> dict:
        """A node config's ``kek`` section for this token."""
        return {"pkcs11": {"module": str(self.module), "token_label": self.token_label,
                           "pin_env": self.pin_env, "keyring": str(keyring)}}

    def add_token(self, label: str) -> None:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin",
                        secrets.token_hex(8), "--pin", self.pin], env={**os.environ, **self.env()},
                       check=True, capture_output=True)


def make_softhsm(directory: Path, token_label: str = "qkms-test") -> SoftHsm:
    require_softhsm()
    tokens = directory / "softhsm-tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    hsm = SoftHsm(conf, token_label, secrets.token_hex(8))
    hsm.add_token(token_label)
    return hsm


def point_this_process_at(hsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> SoftHsm:
    """This process's environment set for ``hsm`` and the PKCS#11 module initialised anew
    at its next use (SoftHSM reads SOFTHSM2_CONF when it is initialised)."""
    from kms.hsm import reopen_all

    for name, value in hsm.env().items():
        monkeypatch.setenv(name, value)
    reopen_all()
    return hsm
