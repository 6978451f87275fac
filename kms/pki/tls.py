"""The TLS of every qkms listener and client: TLS 1.2 or newer, forward-secret AEAD
suites only, client certificates required by servers, revocation by the CA's CRL.

TLS 1.2 suites are limited to ECDHE key exchange with AES-GCM or ChaCha20-Poly1305
(no CBC, no static RSA key exchange, no finite-field DHE); every TLS 1.3 suite is an
AEAD. A server with a CRL checks each client certificate against it (OpenSSL's
CRL_CHECK_LEAF) and, through :class:`ServerTls`, takes a changed CRL file on the next
connection, without a restart.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from kms.pki.errors import PkiError
from kms.pki.revocation import issued_by, read_crl, revoked_serials

log = logging.getLogger("qkms.tls")

#: OpenSSL cipher string for TLS 1.2: ECDHE key exchange, AEAD ciphers only.
STRONG_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS >= 1.2, strong suites only, no compression or renegotiation."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(STRONG_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def client_context(ca: Path | str, cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """A client context trusting ``ca`` and presenting ``cert``/``key``."""
    context = harden(ssl.create_default_context(cafile=str(ca)))
    context.load_cert_chain(str(cert), str(key))
    return context


def server_context(cert: Path | str, key: Path | str, ca: Path | str, crl: Path | str | None = None) -> ssl.SSLContext:
    """A server context that requires a client certificate issued by ``ca`` (and, with
    ``crl``, not revoked by it)."""
    context = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(cafile=str(ca))
    context.verify_mode = ssl.CERT_REQUIRED
    if crl is not None:
        context.load_verify_locations(cafile=str(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def read_ca_certificates(path: Path | str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: cannot read CA certificates ({exc})") from None


def check_crl(crl_path: Path | str, ca_path: Path | str) -> x509.CertificateRevocationList:
    """The CRL at ``crl_path`` if a CA of ``ca_path`` signed it; PkiError otherwise."""
    crl = read_crl(crl_path)
    if not issued_by(crl, read_ca_certificates(ca_path)):
        raise PkiError(f"{crl_path}: not signed by a CA of {ca_path}")
    return crl


def _file_version(path: Path) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


@dataclass(frozen=True)
class _Loaded:
    version: tuple[int, int, int] | None
    context: ssl.SSLContext
    revoked: frozenset[int]


class ServerTls:
    """A node's server contexts, following its CRL file.

    :meth:`context` (called for each new connection) and :meth:`is_revoked` (for each
    request on an open connection) check the file's identity (inode, mtime, size) and
    build a new context when it changed, so every worker process sees a new CRL at its
    next connection. A CRL that cannot be read or is not signed by the CA is logged and
    ignored: the last good one stays in force.
    """

    def __init__(self, cert: Path, key: Path, ca: Path, crl: Path | None = None):
        self._files = (cert, key, ca)
        self._crl = crl
        self._loaded = self._load(_file_version(crl) if crl else None)

    def _load(self, version) -> _Loaded:
        if self._crl is None:
            return _Loaded(None, server_context(*self._files), frozenset())
        crl = check_crl(self._crl, self._files[2])
        context = server_context(*self._files, crl=self._crl)
        next_update = crl.next_update_utc
        log.info("CRL %s loaded: %d revoked, valid until %s", self._crl, len(crl), next_update)
        return _Loaded(version, context, revoked_serials(crl))

    def _current(self) -> _Loaded:
        if self._crl is None:
            return self._loaded
        version = _file_version(self._crl)
        if version is not None and version != self._loaded.version:
            try:
                self._loaded = self._load(version)
            except (PkiError, ssl.SSLError, OSError) as exc:
                log.error("CRL %s not reloaded, the previous one stays in force: %s", self._crl,
                          getattr(exc, "message", exc))
                self._loaded = _Loaded(version, self._loaded.context, self._loaded.revoked)
        return self._loaded

    def context(self) -> ssl.SSLContext:
        """The context for a new connection (with the newest good CRL)."""
        return self._current().context

    def is_revoked(self, certificate_der: bytes | None) -> bool:
        """True if the current CRL revokes this (already verified) client certificate."""
        revoked = self._current().revoked
        if not revoked or certificate_der is None:
            return False
        return _serial(certificate_der) in revoked


@functools.lru_cache(maxsize=4096)
def _serial(certificate_der: bytes) -> int:
    return x509.load_der_x509_certificate(certificate_der).serial_number
