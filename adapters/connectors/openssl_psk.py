"""OpenSSL's s_server and s_client on a TLS 1.3 external PSK: the README's recipe as
code, for ``qkms demo-tls``, the benchmark and the tests.

The key reaches openssl through ``-psk "$QKMS_PSK"`` in a shell, so it is in none of
our argv lists, logs or exceptions (openssl's own command line does carry it, which is
why the README recommends the Python helper or stunnel's PSKsecrets file beyond tests).
``-ciphersuites TLS_AES_128_GCM_SHA256``: OpenSSL gives an external ``-psk`` SHA-256.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading

CIPHERSUITE = "TLS_AES_128_GCM_SHA256"


def _openssl(*argv: str) -> list[str]:
    return ["sh", "-c", 'exec openssl "$@" -psk "$QKMS_PSK"', "openssl", *argv]


def start_s_server(port: int, identity: str, key: bytes) -> subprocess.Popen:
    """An ``s_server -rev`` (answers each line reversed) for one connection, listening
    when this returns; read its report from ``stdout`` after the connection."""
    process = subprocess.Popen(
        _openssl("s_server", "-accept", f"127.0.0.1:{port}", "-tls1_3", "-ciphersuites", CIPHERSUITE,
                 "-psk_identity", identity, "-nocert", "-rev", "-naccept", "1"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"QKMS_PSK": key.hex()})
    # It prints ACCEPT once it listens (a probe connection would use up -naccept 1).
    for line in process.stdout:
        if line.strip() == b"ACCEPT":
            return process
    raise RuntimeError(f"openssl s_server exited with {process.wait()}")


def s_client_exchange(port: int, identity: str, key: bytes, line: bytes, timeout_s: float = 20) -> tuple[int, bytes]:
    """Connect with ``s_client``, send ``line``, read one line back, close: (exit status,
    the line read; empty when the handshake failed)."""
    process = subprocess.Popen(
        _openssl("s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-ciphersuites", CIPHERSUITE,
                 "-psk_identity", identity, "-quiet", "-no_ign_eof"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={"QKMS_PSK": key.hex()})
    watchdog = threading.Timer(timeout_s, process.kill)
    watchdog.start()
    try:
        with contextlib.suppress(OSError):  # a failed handshake may close the pipe first
            process.stdin.write(line)
            process.stdin.flush()
        reply = process.stdout.readline()
        with contextlib.suppress(OSError):
            process.stdin.close()
        return process.wait(), reply
    finally:
        watchdog.cancel()
