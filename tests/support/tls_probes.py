"""Real TLS clients against a listener: Python's ssl with chosen versions, suites and
certificates, and ``openssl s_client``. Each returns what happened: the first line of
an HTTP answer, or why the connection failed."""

from __future__ import annotations

import shutil
import socket
import ssl
import warnings
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Outcome:
    """``answer``: the HTTP status line when the server answered; else ``error``."""

    answer: str | None = None
    error: str | None = None
    version: str | None = None
    cipher: str | None = None

    @property
    def refused(self) -> bool:
        return self.answer is None


def python_client(port: int, ca: Path | str, cert: Path | str | None = None, key: Path | str | None = None,
                  versions: tuple[ssl.TLSVersion, ssl.TLSVersion] | None = None, ciphers: str | None = None,
                  verify_server: bool = True, timeout_s: float = 10.0) -> Outcome:
    """Connect with Python's ssl (versions: (minimum, maximum); ciphers: an OpenSSL
    TLS 1.2 cipher string, at security level 0 so the client itself offers what old
    clients do) and send one request. ``verify_server=False`` for servers whose
    certificates are not TLS server certificates (the connector agents')."""
    context = ssl.create_default_context(cafile=str(ca))
    if not verify_server:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if versions is not None:
        with warnings.catch_warnings():  # offering a deprecated version is the point of some probes
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version, context.maximum_version = versions
    if ciphers is not None or versions is not None:
        context.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            version, cipher = tls.version(), tls.cipher()[0]
            tls.sendall(REQUEST)
            data = tls.recv(4096)
    except (ssl.SSLError, OSError) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    if not data:
        return Outcome(error="closed without an answer", version=version, cipher=cipher)
    return Outcome(answer=data.split(b"\r\n", 1)[0].decode(), version=version, cipher=cipher)


def openssl_binary() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl is not installed (make test installs it with apt-get)")
    return path


def s_client(port: int, ca: Path | str, *options: str, cert: Path | str | None = None,
             key: Path | str | None = None) -> Outcome:
    """``openssl s_client`` with ``options`` (e.g. "-tls1_2", "-cipher", "X"), sending one
    request; its output tells whether the server answered."""
    command = [openssl_binary(), "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca),
               "-verify_return_error", "-ign_eof", *options]
    if cert is not None:
        command += ["-cert", str(cert), "-key", str(key)]
    result = subprocess.run(command, input=REQUEST, capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode(errors="replace")
    status = next((line for line in output.splitlines() if line.startswith("HTTP/1.1 ")), None)
    return Outcome(answer=status) if status else Outcome(error=output[-3000:])
