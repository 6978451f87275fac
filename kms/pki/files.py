"""Reading and atomically writing PEM certificates and private keys."""

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kms.pki.errors import PkiError
from kms.pki.keys import PrivateKey

KEY_FILE_MODE = 0o600
CERT_FILE_MODE = 0o644


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part.

    Parent directories are created. The temporary file has ``mode`` before any
    byte is written, so a private key is never readable by others, not even briefly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_pair(
    certificate: x509.Certificate,
    private_key: PrivateKey,
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
) -> None:
    """Write a certificate (mode 0644) and its private key (mode 0600) as PEM files."""
    write_atomic(key_path, private_key_pem(private_key), KEY_FILE_MODE)
    write_atomic(cert_path, certificate.public_bytes(serialization.Encoding.PEM), CERT_FILE_MODE)


def private_key_pem(private_key: PrivateKey) -> bytes:
    """Encode ``private_key`` as unencrypted PKCS#8 PEM."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def read_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Read one X.509 certificate from a PEM or DER file."""
    data = _read(path)
    loader = x509.load_pem_x509_certificate if b"-----BEGIN" in data else x509.load_der_x509_certificate
    try:
        return loader(data)
    except ValueError:
        raise PkiError(f"{path}: not an X.509 certificate (PEM or DER)") from None


def read_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Read an unencrypted PEM private key (EC or RSA) from ``path``."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PkiError(f"{path}: encrypted private keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm):
        # The parser's own message is dropped: nothing derived from key bytes may leak.
        raise PkiError(f"{path}: not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{path}: only EC and RSA private keys are supported")
    return key


def read_pair(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> tuple[x509.Certificate, PrivateKey]:
    """Read a certificate and its private key, checking that they belong together."""
    certificate = read_certificate(cert_path)
    private_key = read_private_key(key_path)
    if _spki(private_key.public_key()) != _spki(certificate.public_key()):
        raise PkiError(f"{key_path}: private key does not match certificate {cert_path}")
    return certificate, private_key


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{path}: no such file") from None
    except OSError as exc:
        raise PkiError(f"{path}: cannot read ({exc.strerror})") from None
