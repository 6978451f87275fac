"""TLS 1.3 external PSKs in Python's ``ssl`` (Python 3.13+: ``set_psk_*_callback``).

The PSK file is the one ``qkms connect tls-psk`` keeps current (``<key_ID>:<hex>``),
read at every handshake, so a rotation applies to the next connection without a
restart. TLS 1.3 only; an external PSK set through these callbacks has SHA-256 as its
hash, so the session uses TLS_AES_128_GCM_SHA256 (or ChaCha20-Poly1305)::

    from adapters.connectors.tls_psk_helper import psk_client_context, psk_server_context
    server = psk_server_context("/run/qkms/web.psk")     # wrap_socket(..., server_side=True)
    client = psk_client_context("/run/qkms/web.psk")     # wrap_socket(..., server_hostname=None)

A server refuses a client whose identity is not the file's current key_ID (the
handshake fails); a client offers the file's current key_ID. Standard library only.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from adapters.connectors.errors import ConnectorError

def read_psk(path: Path | str) -> tuple[str, bytes]:
    """(identity, key) from a ``<key_ID>:<hex>`` file."""
    try:
        identity, _, key_hex = Path(path).read_text().strip().rpartition(":")
        return identity, bytes.fromhex(key_hex)
    except (OSError, ValueError):
        raise ConnectorError(f"{path} holds no identity:hex PSK") from None


def _context(protocol: int) -> ssl.SSLContext:
    if not hasattr(ssl.SSLContext, "set_psk_client_callback"):
        raise ConnectorError("TLS PSK callbacks need Python 3.13 or later")
    context = ssl.SSLContext(protocol)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context


def psk_server_context(psk_file: Path | str) -> ssl.SSLContext:
    """A TLS 1.3 server context that accepts exactly the file's current identity."""
    context = _context(ssl.PROTOCOL_TLS_SERVER)

    def lookup(identity: str | None) -> bytes:
        current, key = read_psk(psk_file)
        return key if identity == current else b""  # empty: unknown identity, handshake fails

    context.set_psk_server_callback(lookup)
    return context


def psk_client_context(psk_file: Path | str) -> ssl.SSLContext:
    """A TLS 1.3 client context that offers the file's current identity and key."""
    context = _context(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # PSK authenticates the server: no certificate
    context.set_psk_client_callback(lambda hint: read_psk(psk_file))
    return context
