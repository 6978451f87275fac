"""Which SAE a TLS client certificate belongs to.

ETSI GS QKD 014 leaves the certificate field that carries the SAE_ID to
configuration; the REST API calls ``sae_identity_from_der`` on every request.
"""

import functools
from collections.abc import Callable

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kms.pki.errors import PkiError

KME_URN_PREFIX = "urn:qkms:kme:"
SAE_URN_PREFIX = "urn:qkms:sae:"
ADMIN_URN_PREFIX = "urn:qkms:admin:"
_ROLE_PREFIXES = (KME_URN_PREFIX, SAE_URN_PREFIX, ADMIN_URN_PREFIX)


def format_serial(serial_number: int) -> str:
    """Render a serial number as lowercase hex without ``0x`` or leading zeros (0x0a1b -> "a1b")."""
    return format(serial_number, "x")


def _subject_cn(certificate: x509.Certificate) -> str | None:
    attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes or not isinstance(attributes[0].value, str):
        return None
    return attributes[0].value


def _first_alt_name(certificate: x509.Certificate, name_type: type) -> str | None:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    values = extension.value.get_values_for_type(name_type)
    return values[0] if values else None


_EXTRACTORS: dict[str, Callable[[x509.Certificate], str | None]] = {
    "subject_cn": _subject_cn,
    "san_uri": functools.partial(_first_alt_name, name_type=x509.UniformResourceIdentifier),
    "san_dns": functools.partial(_first_alt_name, name_type=x509.DNSName),
    "serial": lambda certificate: format_serial(certificate.serial_number),
}

IDENTITY_FIELDS: tuple[str, ...] = tuple(_EXTRACTORS)
"""The field names ``sae_identity`` accepts (for validating configuration)."""


def _extractor(field: str) -> Callable[[x509.Certificate], str | None]:
    try:
        return _EXTRACTORS[field]
    except KeyError:
        raise PkiError(
            f"unknown SAE identity field {field!r}; use one of {', '.join(IDENTITY_FIELDS)}"
        ) from None


def sae_identity(certificate: x509.Certificate, field: str) -> str | None:
    """Return the SAE_ID that ``certificate`` carries in ``field``, or None if it has none.

    Fields: "subject_cn" (the subject commonName), "san_uri" (the first SAN URI),
    "san_dns" (the first SAN DNS name), "serial" (the serial number as lowercase
    hex, no ``0x``, no leading zeros, see ``format_serial``). An unknown field
    raises PkiError.
    """
    return _extractor(field)(certificate)


@functools.lru_cache(maxsize=4096)
def sae_identity_from_der(der: bytes, field: str) -> str | None:
    """``sae_identity`` for a DER certificate, e.g. ``SSLSocket.getpeercert(binary_form=True)``.

    Results are cached by (DER bytes, field), so a client's repeated requests
    cost a dictionary lookup.
    """
    extract = _extractor(field)
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        raise PkiError("client certificate is not valid DER") from None
    return extract(certificate)


def _role_identity(der: bytes, prefix: str, usages: set) -> str | None:
    """The name in a certificate carrying exactly one ``prefix`` URN, no other qkms
    role's URN, the same name as subject CN, and at least ``usages``; else None."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        granted = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    qkms_uris = [uri for uri in uris if uri.startswith(_ROLE_PREFIXES)]
    if len(qkms_uris) != 1 or not qkms_uris[0].startswith(prefix):
        return None
    name = qkms_uris[0][len(prefix):]
    if _subject_cn(certificate) != name or not usages <= set(granted):
        return None
    return name


@functools.lru_cache(maxsize=1024)
def admin_identity_from_der(der: bytes) -> str | None:
    """The administrator name an admin certificate stands for, or None if ``der`` is not
    one (``CertificateAuthority.issue_admin_certificate``): exactly one SAN URI
    ``urn:qkms:admin:<name>`` and no other qkms role's URN, the same name as subject CN,
    extended key usage for TLS client. A node or SAE certificate never passes."""
    return _role_identity(der, ADMIN_URN_PREFIX, {ExtendedKeyUsageOID.CLIENT_AUTH})


@functools.lru_cache(maxsize=1024)
def node_identity_from_der(der: bytes) -> str | None:
    """The KME_ID a node certificate stands for, or None if ``der`` is not one.

    A node certificate (``CertificateAuthority.issue_node_certificate``) has exactly
    one SAN URI ``urn:qkms:kme:<KME_ID>`` and no other qkms role's URN (SAE, admin),
    the same KME_ID as subject CN, and extended key usage for TLS server and client.
    An SAE certificate that also carries a node URN does not pass.
    """
    return _role_identity(der, KME_URN_PREFIX, {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH})


@functools.lru_cache(maxsize=256)
def certificate_names_from_der(der: bytes) -> tuple[str, ...]:
    """The names a DER certificate carries as a TLS peer: its subject CN, SAN DNS names
    and SAN IP addresses (how a QKD device's client certificate is matched against the
    name configured for it); () if ``der`` is not a certificate."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return ()
    names = [name for name in (_subject_cn(certificate),) if name]
    try:
        alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return tuple(names)
    return tuple(names + alt.get_values_for_type(x509.DNSName) + [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)])
