"""qkms pki: the operator's commands create a usable PKI and refuse to clobber one."""

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.verification import PolicyBuilder, Store

from kms.pki import admin_identity_from_der, read_certificate, sae_identity
from qkms.cli_pki import pki


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(pki, [str(arg) for arg in args])


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    result = _run("ca", "--out", directory, "--cn", "site CA")
    assert result.exit_code == 0, result.output
    return directory


def test_ca_writes_certificate_and_private_key(ca_dir: Path) -> None:
    certificate = read_certificate(ca_dir / "ca.crt")
    assert certificate.subject.rfc4514_string() == "CN=site CA"
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600


def test_ca_refuses_to_overwrite_without_force(ca_dir: Path) -> None:
    before = (ca_dir / "ca.key").read_bytes()
    refused = _run("ca", "--out", ca_dir)
    assert refused.exit_code == 1
    assert "--force" in refused.output
    assert (ca_dir / "ca.key").read_bytes() == before
    assert _run("ca", "--out", ca_dir, "--force").exit_code == 0
    assert (ca_dir / "ca.key").read_bytes() != before


def test_node_certificate_for_given_hosts(tmp_path: Path, ca_dir: Path) -> None:
    out = tmp_path / "nodes"
    result = _run("node", "kme-a", "--ca-dir", ca_dir, "--out", out, "--host", "10.0.0.7", "--host", "kme-a.lan")
    assert result.exit_code == 0, result.output
    certificate = read_certificate(out / "kme-a.crt")
    verifier = PolicyBuilder().store(Store([read_certificate(ca_dir / "ca.crt")]))
    verifier.build_server_verifier(x509.DNSName("kme-a.lan")).verify(certificate, [])
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert stat.S_IMODE((out / "kme-a.key").stat().st_mode) == 0o600


def test_sae_certificate(tmp_path: Path, ca_dir: Path) -> None:
    result = _run("sae", "sae-1", "--ca-dir", ca_dir, "--out", tmp_path / "saes")
    assert result.exit_code == 0, result.output
    certificate = read_certificate(tmp_path / "saes" / "sae-1.crt")
    assert sae_identity(certificate, "san_uri") == "urn:qkms:sae:sae-1"
    assert (tmp_path / "saes" / "sae-1.key").exists()


def test_admin_certificate(tmp_path: Path, ca_dir: Path) -> None:
    result = _run("admin", "ops-1", "--ca-dir", ca_dir, "--out", tmp_path / "admins")
    assert result.exit_code == 0, result.output
    certificate = read_certificate(tmp_path / "admins" / "ops-1.crt")
    assert admin_identity_from_der(certificate.public_bytes(serialization.Encoding.DER)) == "ops-1"


def test_issuing_refuses_to_overwrite_without_force(tmp_path: Path, ca_dir: Path) -> None:
    assert _run("sae", "sae-1", "--ca-dir", ca_dir, "--out", tmp_path).exit_code == 0
    refused = _run("sae", "sae-1", "--ca-dir", ca_dir, "--out", tmp_path)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert _run("sae", "sae-1", "--ca-dir", ca_dir, "--out", tmp_path, "--force").exit_code == 0


@pytest.mark.parametrize("command", ["node", "sae"])
def test_missing_ca_is_a_clear_error(tmp_path: Path, command: str) -> None:
    result = _run(command, "x1", "--ca-dir", tmp_path / "nowhere", "--out", tmp_path)
    assert result.exit_code == 1
    assert "ca.crt" in result.output and "qkms pki ca" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["node", "sae"])
def test_bad_names_are_rejected_before_anything_is_written(tmp_path: Path, ca_dir: Path, command: str) -> None:
    result = _run(command, "../escape", "--ca-dir", ca_dir, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "not valid" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.crt").exists()


def test_issuing_never_replaces_the_ca(ca_dir: Path) -> None:
    before = (ca_dir / "ca.crt").read_bytes()
    result = _run("sae", "ca", "--ca-dir", ca_dir, "--out", ca_dir, "--force")
    assert result.exit_code == 1 and "replace the CA" in result.output
    assert (ca_dir / "ca.crt").read_bytes() == before


def test_bad_host_is_a_clear_error(tmp_path: Path, ca_dir: Path) -> None:
    result = _run("node", "kme-a", "--ca-dir", ca_dir, "--out", tmp_path, "--host", "no such host!")
    assert result.exit_code == 1
    assert "neither an IP address nor a DNS name" in result.output


def test_show_prints_names_serial_validity_and_fingerprint(tmp_path: Path, ca_dir: Path) -> None:
    _run("sae", "sae-1", "--ca-dir", ca_dir, "--out", tmp_path)
    certificate = read_certificate(tmp_path / "sae-1.crt")
    result = _run("show", tmp_path / "sae-1.crt")
    assert result.exit_code == 0, result.output
    for expected in (
        "CN=sae-1",
        "CN=site CA",
        "URI:urn:qkms:sae:sae-1",
        "DNS:sae-1",
        "clientAuth",
        format(certificate.serial_number, "x"),
        f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S}",
        certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
    ):
        assert expected in result.output


def test_show_rejects_a_file_that_is_no_certificate(tmp_path: Path) -> None:
    (tmp_path / "junk.crt").write_text("hello")
    result = _run("show", tmp_path / "junk.crt")
    assert result.exit_code == 1
    assert "not an X.509 certificate" in result.output
