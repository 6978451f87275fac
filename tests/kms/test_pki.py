"""kms.pki: certificates that validate, carry the right names and usages, and work in real TLS."""

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from kms.pki import (
    IDENTITY_FIELDS,
    KEY_TYPES,
    CertificateAuthority,
    IssuedCertificate,
    PkiError,
    ADMIN_URN_PREFIX,
    KME_URN_PREFIX,
    SAE_URN_PREFIX,
    admin_identity_from_der,
    format_serial,
    node_identity_from_der,
    sae_identity,
    sae_identity_from_der,
)

TIMEOUT_S = 10


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test CA")


@pytest.fixture(scope="module")
def node(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue_node_certificate("kme-a", hosts=["127.0.0.1", "localhost", "kme-a.example"])


@pytest.fixture(scope="module")
def sae(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue_sae_certificate("sae-1")


def _server_verify(ca: CertificateAuthority, leaf: x509.Certificate, name: x509.GeneralName) -> list[x509.Certificate]:
    """The verified chain, leaf first; raises VerificationError if there is none."""
    return PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(name).verify(leaf, [])


def _client_verify(ca: CertificateAuthority, leaf: x509.Certificate) -> list[x509.GeneralName]:
    verifier = PolicyBuilder().store(Store([ca.certificate])).build_client_verifier()
    return list(verifier.verify(leaf, []).subjects)


def _extension(certificate: x509.Certificate, extension_type: type) -> x509.ExtensionType:
    return certificate.extensions.get_extension_for_class(extension_type).value


def _bare_certificate() -> x509.Certificate:
    """A self-signed certificate without common name and without SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no names here")])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(0x0A1B).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


# --- the CA -------------------------------------------------------------------------


def test_ca_is_a_self_signed_ca_for_end_entities(ca: CertificateAuthority) -> None:
    ca.certificate.verify_directly_issued_by(ca.certificate)
    constraints = _extension(ca.certificate, x509.BasicConstraints)
    assert constraints.ca and constraints.path_length == 0
    usage = _extension(ca.certificate, x509.KeyUsage)
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert ca.certificate.subject.rfc4514_string() == "CN=test CA"
    assert ca.certificate.signature_hash_algorithm.name == "sha256"


def test_certificate_from_another_ca_does_not_validate(ca: CertificateAuthority) -> None:
    stranger = CertificateAuthority.create("stranger CA").issue_node_certificate("kme-a")
    with pytest.raises(VerificationError):
        _server_verify(ca, stranger.certificate, x509.DNSName("localhost"))
    with pytest.raises(VerificationError):
        _client_verify(ca, stranger.certificate)


# --- node certificates --------------------------------------------------------------


@pytest.mark.parametrize(
    "server_name",
    [x509.DNSName("localhost"), x509.DNSName("kme-a.example"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
)
def test_node_certificate_validates_as_server_for_each_host(ca, node, server_name) -> None:
    assert _server_verify(ca, node.certificate, server_name) == [node.certificate, ca.certificate]


def test_node_certificate_does_not_validate_for_other_hosts(ca, node) -> None:
    with pytest.raises(VerificationError):
        _server_verify(ca, node.certificate, x509.DNSName("kme-b.example"))


def test_node_certificate_validates_as_km_channel_client(ca, node) -> None:
    assert x509.UniformResourceIdentifier("urn:qkms:kme:kme-a") in _client_verify(ca, node.certificate)


def test_node_certificate_names_and_usages(node) -> None:
    certificate = node.certificate
    assert certificate.subject.rfc4514_string() == "CN=kme-a"
    assert list(_extension(certificate, x509.SubjectAlternativeName)) == [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName("kme-a.example"),
        x509.UniformResourceIdentifier("urn:qkms:kme:kme-a"),
    ]
    assert list(_extension(certificate, x509.ExtendedKeyUsage)) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert _extension(certificate, x509.BasicConstraints).ca is False
    usage = _extension(certificate, x509.KeyUsage)
    assert usage.digital_signature and not usage.key_cert_sign


def test_end_entity_key_identifiers_chain_to_the_ca(ca, node) -> None:
    ca_ski = _extension(ca.certificate, x509.SubjectKeyIdentifier).digest
    assert _extension(node.certificate, x509.AuthorityKeyIdentifier).key_identifier == ca_ski
    assert _extension(node.certificate, x509.SubjectKeyIdentifier) == (
        x509.SubjectKeyIdentifier.from_public_key(node.certificate.public_key())
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("10.1.2.3", x509.IPAddress(ipaddress.ip_address("10.1.2.3"))),
        ("::1", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("kme-b", x509.DNSName("kme-b")),
    ],
)
def test_node_hosts_become_ip_or_dns_alt_names(ca, host, expected) -> None:
    issued = ca.issue_node_certificate("kme-b", hosts=[host, host])
    assert list(_extension(issued.certificate, x509.SubjectAlternativeName)) == [
        expected,
        x509.UniformResourceIdentifier("urn:qkms:kme:kme-b"),
    ]


@pytest.mark.parametrize("hosts", [["bad host"], ["-kme"], [""], []])
def test_node_rejects_unusable_hosts(ca, hosts) -> None:
    with pytest.raises(PkiError):
        ca.issue_node_certificate("kme-b", hosts=hosts)


# --- SAE certificates ---------------------------------------------------------------


def test_sae_certificate_validates_as_client_only(ca, sae) -> None:
    assert _client_verify(ca, sae.certificate) == [
        x509.UniformResourceIdentifier("urn:qkms:sae:sae-1"),
        x509.DNSName("sae-1"),
    ]
    assert list(_extension(sae.certificate, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(VerificationError, match="EKU"):
        _server_verify(ca, sae.certificate, x509.DNSName("sae-1"))


@pytest.mark.parametrize(("sae_id", "has_dns"), [("sae-1", True), ("sae.site-a", True), ("sae_1", False)])
def test_sae_dns_alt_name_only_for_dns_names(ca, sae_id, has_dns) -> None:
    names = _extension(ca.issue_sae_certificate(sae_id).certificate, x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:qkms:sae:{sae_id}"]
    assert names.get_values_for_type(x509.DNSName) == ([sae_id] if has_dns else [])


@pytest.mark.parametrize("bad_id", ["", "a/b", "../x", "sae 1", "-a", "urn:x", "x" * 65, "ünï"])
def test_unusable_ids_are_rejected(ca, bad_id) -> None:
    with pytest.raises(PkiError):
        ca.issue_sae_certificate(bad_id)
    with pytest.raises(PkiError):
        ca.issue_node_certificate(bad_id)


def test_longest_id_is_accepted(ca) -> None:
    assert sae_identity(ca.issue_sae_certificate("x" * 64).certificate, "subject_cn") == "x" * 64


# --- key types, serials, validity ---------------------------------------------------


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_key_type_gives_a_valid_chain(key_type) -> None:
    authority = CertificateAuthority.create(key_type=key_type)
    issued = authority.issue_node_certificate("kme-a", key_type=key_type)
    assert _server_verify(authority, issued.certificate, x509.DNSName("localhost"))[-1] == authority.certificate
    usage = _extension(issued.certificate, x509.KeyUsage)
    assert usage.key_agreement == key_type.startswith("ec-")
    assert usage.key_encipherment == key_type.startswith("rsa-")


def test_unknown_key_type_is_rejected() -> None:
    with pytest.raises(PkiError, match="ec-p256"):
        CertificateAuthority.create(key_type="dsa-1024")


def test_serial_numbers_are_random(ca) -> None:
    serials = {ca.issue_sae_certificate("sae-1").certificate.serial_number for _ in range(5)}
    assert len(serials) == 5
    assert min(serials).bit_length() > 64


def test_validity_is_capped_at_the_ca_expiry() -> None:
    authority = CertificateAuthority.create(valid_days=30)
    issued = authority.issue_sae_certificate("sae-1", valid_days=825)
    assert issued.certificate.not_valid_after_utc == authority.certificate.not_valid_after_utc


def test_validity_days_are_honoured(ca) -> None:
    issued = ca.issue_sae_certificate("sae-1", valid_days=10)
    lifetime = issued.certificate.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=9, hours=23) < lifetime <= dt.timedelta(days=10)
    with pytest.raises(PkiError):
        ca.issue_sae_certificate("sae-1", valid_days=0)


# --- SAE identity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [("subject_cn", "sae-1"), ("san_uri", "urn:qkms:sae:sae-1"), ("san_dns", "sae-1")],
)
def test_identity_fields(sae, field, expected) -> None:
    assert sae_identity(sae.certificate, field) == expected
    assert sae_identity_from_der(sae.certificate.public_bytes(serialization.Encoding.DER), field) == expected


def test_identity_serial_is_lowercase_hex_without_prefix(sae) -> None:
    serial = sae_identity(sae.certificate, "serial")
    assert serial == format(sae.certificate.serial_number, "x")
    assert int(serial, 16) == sae.certificate.serial_number
    assert format_serial(0x0A1B) == "a1b"


def test_identity_takes_the_first_of_several_alt_names(node) -> None:
    assert sae_identity(node.certificate, "san_dns") == "localhost"


@pytest.mark.parametrize("field", ["subject_cn", "san_uri", "san_dns"])
def test_identity_absent_fields_give_none(field) -> None:
    assert sae_identity(_bare_certificate(), field) is None


def test_identity_serial_of_a_certificate_without_names() -> None:
    assert sae_identity(_bare_certificate(), "serial") == "a1b"


def test_identity_without_dns_alt_name_is_none(ca) -> None:
    assert sae_identity(ca.issue_sae_certificate("sae_1").certificate, "san_dns") is None


def test_identity_unknown_field_is_rejected(sae) -> None:
    with pytest.raises(PkiError, match="subject_cn"):
        sae_identity(sae.certificate, "email")
    with pytest.raises(PkiError):
        sae_identity_from_der(sae.certificate.public_bytes(serialization.Encoding.DER), "email")
    assert "email" not in IDENTITY_FIELDS


def test_identity_from_der_is_cached(ca) -> None:
    der = ca.issue_sae_certificate("sae-2").certificate.public_bytes(serialization.Encoding.DER)
    hits = sae_identity_from_der.cache_info().hits
    assert sae_identity_from_der(der, "san_uri") == sae_identity_from_der(der, "san_uri")
    assert sae_identity_from_der.cache_info().hits == hits + 1


def test_identity_from_garbage_der_is_rejected() -> None:
    with pytest.raises(PkiError):
        sae_identity_from_der(b"\x30\x03\x02\x01\x00", "subject_cn")


# --- files --------------------------------------------------------------------------


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def test_save_creates_parents_and_restricts_the_key(tmp_path: Path, sae) -> None:
    cert_path, key_path = tmp_path / "a" / "b" / "sae-1.crt", tmp_path / "a" / "b" / "sae-1.key"
    with _umask(0):
        sae.save(cert_path, key_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert sorted(os.listdir(cert_path.parent)) == ["sae-1.crt", "sae-1.key"]
    assert cert_path.read_bytes() == sae.cert_pem()
    assert key_path.read_bytes() == sae.key_pem()


def test_save_replaces_existing_files(tmp_path: Path, ca) -> None:
    first, second = ca.issue_sae_certificate("sae-1"), ca.issue_sae_certificate("sae-1")
    first.save(tmp_path / "s.crt", tmp_path / "s.key")
    second.save(tmp_path / "s.crt", tmp_path / "s.key")
    assert (tmp_path / "s.key").read_bytes() == second.key_pem()
    assert stat.S_IMODE((tmp_path / "s.key").stat().st_mode) == 0o600


def test_ca_round_trip(tmp_path: Path, ca) -> None:
    ca.save(tmp_path / "ca.crt", tmp_path / "ca.key")
    loaded = CertificateAuthority.load(tmp_path / "ca.crt", tmp_path / "ca.key")
    assert loaded.certificate == ca.certificate
    assert loaded.key_pem() == ca.key_pem()
    assert _server_verify(ca, loaded.issue_node_certificate("kme-z").certificate, x509.DNSName("localhost"))[-1] \
        == ca.certificate


def test_load_rejects_a_key_of_another_certificate(tmp_path: Path, ca) -> None:
    other = CertificateAuthority.create()
    ca.save(tmp_path / "ca.crt", tmp_path / "ca.key")
    other.save(tmp_path / "other.crt", tmp_path / "other.key")
    with pytest.raises(PkiError, match="does not match") as caught:
        CertificateAuthority.load(tmp_path / "ca.crt", tmp_path / "other.key")
    assert other.key_pem().decode().splitlines()[1] not in str(caught.value)


def test_load_rejects_a_certificate_that_is_no_ca(tmp_path: Path, node) -> None:
    node.save(tmp_path / "n.crt", tmp_path / "n.key")
    with pytest.raises(PkiError, match="not a CA"):
        CertificateAuthority.load(tmp_path / "n.crt", tmp_path / "n.key")


def test_load_reports_missing_files(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="no such file"):
        CertificateAuthority.load(tmp_path / "ca.crt", tmp_path / "ca.key")


def test_unreadable_key_error_carries_no_key_bytes(tmp_path: Path, ca) -> None:
    ca.save(tmp_path / "ca.crt", tmp_path / "ca.key")
    secret = "U0VDUkVUU0VDUkVUU0VDUkVU"
    (tmp_path / "ca.key").write_text(f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n")
    with pytest.raises(PkiError) as caught:
        CertificateAuthority.load(tmp_path / "ca.crt", tmp_path / "ca.key")
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None


def test_private_key_is_not_in_repr(ca, sae) -> None:
    for certified in (ca, sae):
        assert "private_key" not in repr(certified)
        assert certified.key_pem().decode().splitlines()[1] not in repr(certified)


# --- real TLS -----------------------------------------------------------------------


@contextlib.contextmanager
def _mtls_server(tmp_path: Path, ca: CertificateAuthority, node: IssuedCertificate) -> Iterator[tuple[int, dict]]:
    """A one-connection TLS server on 127.0.0.1 requiring client certificates from ``ca``.

    Yields (port, outcome); after the block, outcome holds "identity" (the client's
    SAE identity by subject CN) or "error" (why the handshake failed).
    """
    node.save(tmp_path / "server.crt", tmp_path / "server.key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca.cert_pem().decode())
    outcome: dict = {}
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(TIMEOUT_S)
            with context.wrap_socket(connection, server_side=True) as tls:
                outcome["identity"] = sae_identity_from_der(tls.getpeercert(binary_form=True), "subject_cn")
                tls.sendall(b"ok")
        except OSError as exc:  # ssl.SSLError is an OSError
            outcome["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], outcome
    finally:
        thread.join(TIMEOUT_S)
        listener.close()
    assert not thread.is_alive()


def _exchange(tmp_path: Path, port: int, ca: CertificateAuthority, client: IssuedCertificate | None) -> bytes:
    """Connect as ``client`` (verifying the server as "localhost"); return what the server sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca.cert_pem().decode())
    if client is not None:
        client.save(tmp_path / "client.crt", tmp_path / "client.key")
        context.load_cert_chain(tmp_path / "client.crt", tmp_path / "client.key")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.recv(2)
        except (ssl.SSLError, ConnectionError):
            return b""


@pytest.mark.parametrize(("client_id", "issue"), [("sae-1", "issue_sae_certificate"), ("kme-b", "issue_node_certificate")])
def test_tls_server_sees_the_client_identity(tmp_path: Path, ca, node, client_id, issue) -> None:
    client = getattr(ca, issue)(client_id)
    with _mtls_server(tmp_path, ca, node) as (port, outcome):
        received = _exchange(tmp_path, port, ca, client)
    assert received == b"ok"
    assert outcome == {"identity": client_id}


@pytest.mark.parametrize("client_from", ["other CA", "no certificate"])
def test_tls_server_rejects_clients_not_from_its_ca(tmp_path: Path, ca, node, client_from) -> None:
    client = CertificateAuthority.create().issue_sae_certificate("sae-1") if client_from == "other CA" else None
    with _mtls_server(tmp_path, ca, node) as (port, outcome):
        received = _exchange(tmp_path, port, ca, client)
    assert received == b""
    assert isinstance(outcome.get("error"), ssl.SSLError), outcome
    assert "certificate" in str(outcome["error"])


# --- node identity (KM channel) ------------------------------------------------------


def _der(issued: IssuedCertificate) -> bytes:
    return issued.certificate.public_bytes(serialization.Encoding.DER)


def _crafted(ca: CertificateAuthority, common_name: str, uris: list[str], usages) -> bytes:
    """A certificate the CA signs with exactly these names and usages (as a careless or
    compromised issuing process might)."""
    names = [x509.UniformResourceIdentifier(uri) for uri in uris]
    return _der(ca._issue(common_name, names, usages, 30, "ec-p256"))


SERVER_AND_CLIENT = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_a_node_certificate_names_its_kme(ca, node) -> None:
    assert node_identity_from_der(_der(node)) == "kme-a"


@pytest.mark.parametrize("common_name, uris, usages", [
    ("sae-1", [KME_URN_PREFIX + "kme-a"], SERVER_AND_CLIENT),
    ("kme-a", [KME_URN_PREFIX + "kme-a", SAE_URN_PREFIX + "sae-1"], SERVER_AND_CLIENT),
    ("kme-a", [KME_URN_PREFIX + "kme-a", KME_URN_PREFIX + "kme-b"], SERVER_AND_CLIENT),
    ("kme-a", [KME_URN_PREFIX + "kme-a"], [ExtendedKeyUsageOID.CLIENT_AUTH]),
    ("kme-a", [], SERVER_AND_CLIENT),
], ids=["SAE CN with a node URI", "node and SAE URNs", "two node URNs", "client-only usage", "no node URN"])
def test_other_certificates_do_not_pass_as_a_node(ca, common_name, uris, usages) -> None:
    assert node_identity_from_der(_crafted(ca, common_name, uris, usages)) is None


def test_an_sae_certificate_is_no_node(sae) -> None:
    assert node_identity_from_der(_der(sae)) is None
    assert node_identity_from_der(b"not a certificate") is None


# --- admin identity (admin API) ------------------------------------------------------


def test_an_admin_certificate_names_its_administrator_and_nothing_else(ca, node, sae) -> None:
    admin = _der(ca.issue_admin_certificate("ops-1"))
    assert admin_identity_from_der(admin) == "ops-1"
    assert node_identity_from_der(admin) is None
    assert admin_identity_from_der(_der(node)) is None and admin_identity_from_der(_der(sae)) is None


@pytest.mark.parametrize("common_name, uris", [
    ("sae-1", [ADMIN_URN_PREFIX + "ops-1"]),
    ("ops-1", [ADMIN_URN_PREFIX + "ops-1", SAE_URN_PREFIX + "ops-1"]),
    ("ops-1", [ADMIN_URN_PREFIX + "ops-1", KME_URN_PREFIX + "ops-1"]),
], ids=["another CN", "admin and SAE URNs", "admin and node URNs"])
def test_other_certificates_do_not_pass_as_an_admin(ca, common_name, uris) -> None:
    crafted = _crafted(ca, common_name, uris, [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert admin_identity_from_der(crafted) is None
