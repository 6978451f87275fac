"""A certificate authority that issues node (KME) and SAE certificates.

Issued certificates are what TLS needs on both ends of every qkms interface:
nodes serve the ETSI 014 API and are clients of each other on the KM channel
(serverAuth and clientAuth); SAEs are TLS clients only (clientAuth).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kms.pki import files
from kms.pki.errors import PkiError
from kms.pki.identity import ADMIN_URN_PREFIX, KME_URN_PREFIX, SAE_URN_PREFIX
from kms.pki.keys import DEFAULT_KEY_TYPE, PrivateKey, generate_private_key
from kms.pki.names import check_entity_id, host_general_name, is_dns_name

DEFAULT_NODE_HOSTS = ("127.0.0.1", "localhost")

# Tolerates clocks of peers running slightly behind the issuer's.
_CLOCK_SKEW = dt.timedelta(minutes=5)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class _CertifiedKey:
    """A certificate with its private key (the key is kept out of repr)."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)

    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM. Never log it."""
        return files.private_key_pem(self.private_key)

    def save(self, cert_path: PathLike, key_path: PathLike) -> None:
        """Write both as PEM, atomically; the key file gets mode 0600, parents are created."""
        files.save_pair(self.certificate, self.private_key, cert_path, key_path)


@dataclass(frozen=True)
class IssuedCertificate(_CertifiedKey):
    """An end-entity (node or SAE) certificate and its private key, issued by a CA."""


@dataclass(frozen=True)
class CertificateAuthority(_CertifiedKey):
    """A self-signed CA certificate and key that issues node and SAE certificates."""

    @classmethod
    def create(
        cls,
        common_name: str = "qkms demo CA",
        valid_days: int = 3650,
        key_type: str = DEFAULT_KEY_TYPE,
    ) -> CertificateAuthority:
        """Create a new self-signed CA (path length 0: it signs end entities only)."""
        private_key = generate_private_key(key_type)
        public_key = private_key.public_key()
        subject = _subject(common_name)
        not_before, not_after = _validity(valid_days)
        certificate = (
            _builder(subject, public_key, not_before, not_after)
            .issuer_name(subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
            .sign(private_key, hashes.SHA256())
        )
        return cls(certificate, private_key)

    @classmethod
    def load(cls, cert_path: PathLike, key_path: PathLike) -> CertificateAuthority:
        """Load a CA from PEM files; raise PkiError unless the pair is a matching CA."""
        certificate, private_key = files.read_pair(cert_path, key_path)
        if not _is_ca(certificate):
            raise PkiError(f"{cert_path}: not a CA certificate (basicConstraints CA is not set)")
        return cls(certificate, private_key)

    def issue_node_certificate(
        self,
        kme_id: str,
        hosts: Sequence[str] = DEFAULT_NODE_HOSTS,
        valid_days: int = 825,
        key_type: str = DEFAULT_KEY_TYPE,
    ) -> IssuedCertificate:
        """Issue a node (KME) certificate, valid as TLS server and as TLS client.

        Subject CN is ``kme_id``; SANs are each host (IP literals as IP addresses,
        anything else as DNS names) and the URI ``urn:qkms:kme:<kme_id>``.
        """
        check_entity_id(kme_id, "KME_ID")
        if not hosts:
            raise PkiError(f"node {kme_id!r}: at least one host is needed")
        host_names = [host_general_name(host) for host in dict.fromkeys(hosts)]
        return self._issue(
            kme_id,
            [*host_names, x509.UniformResourceIdentifier(KME_URN_PREFIX + kme_id)],
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            valid_days,
            key_type,
        )

    def issue_device_certificate(
        self,
        name: str,
        hosts: Sequence[str] = DEFAULT_NODE_HOSTS,
        valid_days: int = 825,
        key_type: str = DEFAULT_KEY_TYPE,
    ) -> IssuedCertificate:
        """Issue a QKD device's certificate (a mock device, or a test stand-in for a
        vendor's), valid as TLS server and client: subject CN ``name``, SANs the DNS
        name ``name`` and each host. No qkms URN: a device is neither node nor SAE."""
        check_entity_id(name, "device name")
        if not is_dns_name(name):
            raise PkiError(f"device name {name!r} must be a DNS name (it is checked as the server's name)")
        names = [x509.DNSName(name), *(host_general_name(host) for host in dict.fromkeys(hosts))]
        return self._issue(name, names, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                           valid_days, key_type)

    def issue_sae_certificate(
        self, sae_id: str, valid_days: int = 825, key_type: str = DEFAULT_KEY_TYPE
    ) -> IssuedCertificate:
        """Issue an SAE certificate, valid as TLS client only.

        Subject CN is ``sae_id``; SANs are the URI ``urn:qkms:sae:<sae_id>`` and,
        when ``sae_id`` is a valid DNS name, the DNS name ``sae_id``.
        """
        check_entity_id(sae_id, "SAE_ID")
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SAE_URN_PREFIX + sae_id)]
        if is_dns_name(sae_id):
            names.append(x509.DNSName(sae_id))
        return self._issue(sae_id, names, [ExtendedKeyUsageOID.CLIENT_AUTH], valid_days, key_type)

    def issue_admin_certificate(
        self, name: str = "admin", valid_days: int = 825, key_type: str = DEFAULT_KEY_TYPE
    ) -> IssuedCertificate:
        """Issue an administrator certificate, valid as TLS client only: subject CN
        ``name`` and the SAN URI ``urn:qkms:admin:<name>`` (the admin API's role)."""
        check_entity_id(name, "admin name")
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(ADMIN_URN_PREFIX + name)]
        return self._issue(name, names, [ExtendedKeyUsageOID.CLIENT_AUTH], valid_days, key_type)

    def _issue(
        self,
        common_name: str,
        alt_names: list[x509.GeneralName],
        extended_usages: list[x509.ObjectIdentifier],
        valid_days: int,
        key_type: str,
    ) -> IssuedCertificate:
        """Sign an end-entity certificate; it never outlives this CA."""
        private_key = generate_private_key(key_type)
        public_key = private_key.public_key()
        not_before, not_after = _validity(valid_days, self.certificate.not_valid_after_utc)
        certificate = (
            _builder(_subject(common_name), public_key, not_before, not_after)
            .issuer_name(self.certificate.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_end_entity_key_usage(private_key), critical=True)
            .add_extension(x509.ExtendedKeyUsage(extended_usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
            .sign(self.private_key, hashes.SHA256())
        )
        return IssuedCertificate(certificate, private_key)

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """Point at this CA's key the way its own certificate names it."""
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.certificate.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def _subject(common_name: str) -> x509.Name:
    try:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    except ValueError as exc:
        raise PkiError(f"common name {common_name!r}: {exc}") from None


def _validity(
    valid_days: int, not_after_limit: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """Return (not_before, not_after) for ``valid_days`` from now, capped at the limit."""
    if valid_days < 1:
        raise PkiError(f"valid_days must be >= 1, got {valid_days}")
    now = dt.datetime.now(dt.timezone.utc)
    not_after = now + dt.timedelta(days=valid_days)
    if not_after_limit is not None:
        if not_after_limit <= now:
            raise PkiError(f"the CA certificate expired on {not_after_limit:%Y-%m-%d}")
        not_after = min(not_after, not_after_limit)
    return now - _CLOCK_SKEW, not_after


def _builder(
    subject: x509.Name, public_key, not_before: dt.datetime, not_after: dt.datetime
) -> x509.CertificateBuilder:
    """The fields every certificate here shares."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _end_entity_key_usage(private_key: PrivateKey) -> x509.KeyUsage:
    """digitalSignature, plus keyAgreement (EC) or keyEncipherment (RSA)."""
    is_ec = isinstance(private_key, ec.EllipticCurvePrivateKey)
    return _key_usage(digital_signature=True, key_agreement=is_ec, key_encipherment=not is_ec)


def _key_usage(**usages: bool) -> x509.KeyUsage:
    """A KeyUsage with the named bits set and all others clear."""
    bits = dict.fromkeys(
        (
            "digital_signature", "content_commitment", "key_encipherment",
            "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
            "encipher_only", "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(**(bits | usages))


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca
