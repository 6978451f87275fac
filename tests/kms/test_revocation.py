"""Revocation: the CA's CRL (kms.pki.revocation, `qkms pki revoke`/`crl`) and the server
contexts that follow it (kms.pki.tls.ServerTls), without a node process."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kms.config import check_files, parse_config
from kms.errors import ConfigError
from kms.pki import CertificateAuthority, PkiError, format_serial
from kms.pki.revocation import issue_crl, issued_by, read_crl, revoked_serials, serial_to_revoke
from kms.pki.tls import STRONG_TLS12_CIPHERS, ServerTls, server_context
from qkms.cli_pki import pki


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    ca = CertificateAuthority.create()
    ca.save(tmp_path / "ca.crt", tmp_path / "ca.key")
    ca.issue_node_certificate("KME-1").save(tmp_path / "node.crt", tmp_path / "node.key")
    for sae_id in ("sae-1", "sae-2"):
        ca.issue_sae_certificate(sae_id).save(tmp_path / f"{sae_id}.crt", tmp_path / f"{sae_id}.key")
    return tmp_path


def ca_of(pki_dir: Path) -> CertificateAuthority:
    return CertificateAuthority.load(pki_dir / "ca.crt", pki_dir / "ca.key")


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_a_new_crl_is_empty_signed_and_valid_for_the_days_asked(pki_dir: Path) -> None:
    ca = ca_of(pki_dir)
    crl = issue_crl(ca, pki_dir / "ca.crl", valid_days=7)
    assert len(crl) == 0 and issued_by(read_crl(pki_dir / "ca.crl"), [ca.certificate])
    lifetime = crl.next_update_utc - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=6, hours=23) < lifetime <= dt.timedelta(days=7)


def test_revoking_adds_to_what_was_revoked_and_numbers_each_issue(pki_dir: Path) -> None:
    ca = ca_of(pki_dir)
    first = issue_crl(ca, pki_dir / "ca.crl", [serial_of(pki_dir / "sae-1.crt")])
    second = issue_crl(ca, pki_dir / "ca.crl", [serial_of(pki_dir / "sae-2.crt"), serial_of(pki_dir / "sae-1.crt")])
    assert revoked_serials(second) == {serial_of(pki_dir / "sae-1.crt"), serial_of(pki_dir / "sae-2.crt")}
    numbers = [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in (first, second)]
    assert numbers == [1, 2]


def test_a_crl_of_another_ca_is_never_overwritten(pki_dir: Path) -> None:
    issue_crl(CertificateAuthority.create("other"), pki_dir / "ca.crl")
    before = (pki_dir / "ca.crl").read_bytes()
    with pytest.raises(PkiError, match="not issued by the CA"):
        issue_crl(ca_of(pki_dir), pki_dir / "ca.crl", [5])
    assert (pki_dir / "ca.crl").read_bytes() == before


def test_what_to_revoke_is_a_certificate_of_this_ca_or_a_hex_serial(pki_dir: Path, tmp_path: Path) -> None:
    ca = ca_of(pki_dir)
    assert serial_to_revoke(ca, str(pki_dir / "sae-1.crt")) == serial_of(pki_dir / "sae-1.crt")
    assert serial_to_revoke(ca, "0x0A1b") == serial_to_revoke(ca, "a1b") == 0xA1B
    CertificateAuthority.create("other").issue_sae_certificate("x").save(tmp_path / "x.crt", tmp_path / "x.key")
    with pytest.raises(PkiError, match="not issued by this CA"):
        serial_to_revoke(ca, str(tmp_path / "x.crt"))
    for bad in ("not-a-serial", "0"):
        with pytest.raises(PkiError):
            serial_to_revoke(ca, bad)


def test_qkms_pki_revoke_and_crl(pki_dir: Path) -> None:
    runner = CliRunner()
    serial = format_serial(serial_of(pki_dir / "sae-2.crt"))
    result = runner.invoke(pki, ["revoke", "--ca-dir", str(pki_dir), str(pki_dir / "sae-1.crt"), serial])
    assert result.exit_code == 0, result.output
    assert f"revoked serial {serial}" in result.output
    assert revoked_serials(read_crl(pki_dir / "ca.crl")) == {serial_of(pki_dir / f"sae-{i}.crt") for i in (1, 2)}
    refreshed = runner.invoke(pki, ["crl", "--ca-dir", str(pki_dir), "--valid-days", "90"])
    assert refreshed.exit_code == 0, refreshed.output
    crl = read_crl(pki_dir / "ca.crl")
    assert len(crl) == 2 and crl.next_update_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=89)
    refused = runner.invoke(pki, ["revoke", "--ca-dir", str(pki_dir), "zz-not-hex"])
    assert refused.exit_code == 1 and "neither a certificate file nor a hex serial" in refused.output


# --- the server side ------------------------------------------------------------------------


def test_server_contexts_require_certificates_and_check_the_crl(pki_dir: Path) -> None:
    issue_crl(ca_of(pki_dir), pki_dir / "ca.crl")
    context = server_context(pki_dir / "node.crt", pki_dir / "node.key", pki_dir / "ca.crt", pki_dir / "ca.crl")
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ssl.VERIFY_CRL_CHECK_LEAF in context.verify_flags
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 and all("ECDHE" in name and ("GCM" in name or "CHACHA20" in name) for name in tls12)
    assert STRONG_TLS12_CIPHERS == "ECDHE+AESGCM:ECDHE+CHACHA20"


def test_server_tls_follows_the_crl_file(pki_dir: Path) -> None:
    ca = ca_of(pki_dir)
    issue_crl(ca, pki_dir / "ca.crl")
    tls = ServerTls(pki_dir / "node.crt", pki_dir / "node.key", pki_dir / "ca.crt", pki_dir / "ca.crl")
    der = x509.load_pem_x509_certificate((pki_dir / "sae-1.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER)
    first = tls.context()
    assert not tls.is_revoked(der) and tls.context() is first  # unchanged file: same context
    issue_crl(ca, pki_dir / "ca.crl", [serial_of(pki_dir / "sae-1.crt")])
    assert tls.is_revoked(der)
    assert tls.context() is not first


def test_a_forged_or_broken_crl_is_ignored_and_the_last_good_one_stays(pki_dir: Path, caplog) -> None:
    ca = ca_of(pki_dir)
    issue_crl(ca, pki_dir / "ca.crl", [serial_of(pki_dir / "sae-1.crt")])
    tls = ServerTls(pki_dir / "node.crt", pki_dir / "node.key", pki_dir / "ca.crt", pki_dir / "ca.crl")
    good = tls.context()
    der = x509.load_pem_x509_certificate((pki_dir / "sae-1.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER)
    (pki_dir / "ca.crl").unlink()
    issue_crl(CertificateAuthority.create("forger"), pki_dir / "ca.crl")  # empties the list: must not count
    assert tls.is_revoked(der) and tls.context() is good
    (pki_dir / "ca.crl").write_text("garbage")
    assert tls.is_revoked(der) and tls.context() is good
    assert "not reloaded" in caplog.text


def _config(pki_dir: Path, crl: str) -> dict:
    (pki_dir / "kek.hex").write_text("00" * 32)
    return {"kme_id": "KME-1", "saes": [{"id": "sae-1"}], "kek": {"file": "kek.hex"},
            "tls": {"cert": "node.crt", "key": "node.key", "ca": "ca.crt", "crl": crl}}


def test_a_missing_or_foreign_crl_stops_the_node_naming_tls_crl(pki_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^tls\.crl: file not found"):
        check_files(parse_config(_config(pki_dir, "absent.crl"), pki_dir))
    issue_crl(CertificateAuthority.create("other"), pki_dir / "other.crl")
    with pytest.raises(ConfigError, match=r"^tls\.crl: .*not signed by a CA"):
        check_files(parse_config(_config(pki_dir, "other.crl"), pki_dir))
    issue_crl(ca_of(pki_dir), pki_dir / "ca.crl")
    check_files(parse_config(_config(pki_dir, "ca.crl"), pki_dir))
    assert parse_config(_config(pki_dir, "ca.crl"), pki_dir).tls.crl == pki_dir / "ca.crl"
