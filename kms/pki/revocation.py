"""Certificate revocation: the CA's CRL file, written by ``qkms pki revoke``, and the
set of revoked serials a node checks client certificates against.

The CRL is a PEM file signed by the CA, with a CRL number that grows with every
issue and a ``next_update`` after which TLS verification refuses every client (an
expired CRL fails closed): re-issue it before then (``qkms pki crl``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from kms.pki.authority import CertificateAuthority
from kms.pki.errors import PkiError
from kms.pki.files import write_atomic

CRL_FILE_MODE = 0o644
DEFAULT_CRL_VALID_DAYS = 30


def read_crl(path: str | os.PathLike[str]) -> x509.CertificateRevocationList:
    """A CRL from a PEM or DER file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PkiError(f"{path}: cannot read ({exc.strerror})") from None
    loader = x509.load_pem_x509_crl if b"-----BEGIN" in data else x509.load_der_x509_crl
    try:
        return loader(data)
    except ValueError:
        raise PkiError(f"{path}: not a certificate revocation list (PEM or DER)") from None


def issued_by(crl: x509.CertificateRevocationList, issuers: Iterable[x509.Certificate]) -> bool:
    """True if one of ``issuers`` (CA certificates) signed ``crl``."""
    for issuer in issuers:
        if crl.issuer != issuer.subject:
            continue
        try:
            if crl.is_signature_valid(issuer.public_key()):
                return True
        except (InvalidSignature, TypeError):
            continue
    return False


def revoked_serials(crl: x509.CertificateRevocationList) -> frozenset[int]:
    """The serial numbers the CRL revokes."""
    return frozenset(entry.serial_number for entry in crl)


def _crl_number(crl: x509.CertificateRevocationList | None) -> int:
    if crl is None:
        return 0
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def _existing(ca: CertificateAuthority, path: Path) -> x509.CertificateRevocationList | None:
    """The CRL already at ``path`` (None if there is none); PkiError if another CA signed it."""
    if not path.exists():
        return None
    crl = read_crl(path)
    if not issued_by(crl, [ca.certificate]):
        raise PkiError(f"{path}: this CRL was not issued by the CA {ca.certificate.subject.rfc4514_string()}")
    return crl


def issue_crl(ca: CertificateAuthority, path: str | os.PathLike[str], serials: Iterable[int] = (),
              valid_days: int = DEFAULT_CRL_VALID_DAYS) -> x509.CertificateRevocationList:
    """Write (atomically) the CA's CRL at ``path``: everything it revoked before plus
    ``serials``, a CRL number one higher, valid from now for ``valid_days``."""
    if valid_days < 1:
        raise PkiError(f"valid_days must be >= 1, got {valid_days}")
    path = Path(path)
    previous = _existing(ca, path)
    now = dt.datetime.now(dt.timezone.utc)
    entries = {entry.serial_number: entry for entry in previous or ()}
    for serial in serials:
        if serial not in entries:
            entries[serial] = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.certificate.subject)
               .last_update(now - dt.timedelta(minutes=5))
               .next_update(now + dt.timedelta(days=valid_days))
               .add_extension(x509.CRLNumber(_crl_number(previous) + 1), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.certificate.public_key()),
                              critical=False))
    for entry in entries.values():
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca.private_key, hashes.SHA256())
    write_atomic(path, crl.public_bytes(serialization.Encoding.PEM), CRL_FILE_MODE)
    return crl


def serial_to_revoke(ca: CertificateAuthority, cert_or_serial: str) -> int:
    """The serial number named by a certificate file (which this CA must have issued)
    or by a serial number in hex (as ``qkms pki show`` prints it, ``0x`` allowed)."""
    from kms.pki.files import read_certificate

    if Path(cert_or_serial).is_file():
        certificate = read_certificate(cert_or_serial)
        try:
            certificate.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, InvalidSignature):
            raise PkiError(f"{cert_or_serial}: not issued by this CA") from None
        return certificate.serial_number
    text = cert_or_serial.strip().lower().removeprefix("0x").replace(":", "")
    try:
        serial = int(text, 16)
    except ValueError:
        raise PkiError(f"{cert_or_serial!r} is neither a certificate file nor a hex serial number") from None
    if serial <= 0:
        raise PkiError(f"{cert_or_serial!r}: a serial number is positive")
    return serial
