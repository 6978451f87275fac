"""TLS 1.3 external PSK keyed by qkms: two `qkms connect tls-psk` agents (SAEs at nodes A
and C, keys relayed through B) keep PSK files; `openssl s_server` and `s_client` use
them to complete a TLS 1.3 PSK handshake and exchange data; a wrong key fails the
handshake. The Python 3.13 ssl helper reads the same files."""

from __future__ import annotations

import glob
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from adapters.connectors.openssl_psk import CIPHERSUITE, s_client_exchange, start_s_server
from adapters.connectors.tls_psk_helper import read_psk
from qkms.layout import free_port
from qkms.runner import stop_process
from tests.support.connect import agent_pair, stop_pair

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def psk_pair(qnet, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make test installs it)")
    files = tmp_path / "a" / "web.psk", tmp_path / "c" / "web.psk"
    init, resp = agent_pair(qnet, "tls-psk", "web", ("tls-a", ["--psk-file", str(files[0])]),
                            ("tls-c", ["--psk-file", str(files[1])]), interval_s=600)
    try:
        init.wait_for(60, "keyed", state="keyed", sequence=1)
        resp.wait_for(10, "keyed", state="keyed", sequence=1)
        yield files
    finally:
        stop_pair(init, resp)


def test_openssl_completes_a_tls13_psk_handshake_with_qkms_keys(psk_pair):
    (identity_a, key_a), (identity_c, key_c) = (read_psk(f) for f in psk_pair)
    assert identity_a == identity_c  # the key_ID is the PSK identity
    assert hashlib.sha256(key_a).digest() == hashlib.sha256(key_c).digest()
    port = free_port()
    server = start_s_server(port, identity_c, key_c)
    try:
        status, reply = s_client_exchange(port, identity_a, key_a, b"hello over qkms\n")
        assert (status, reply.strip()) == (0, b"smkq revo olleh")
        server_log = server.stdout.read().decode()
    finally:
        stop_process(server, timeout_s=5)
    assert "Protocol version: TLSv1.3" in server_log and f"Ciphersuite: {CIPHERSUITE}" in server_log
    leaked = key_a.hex() in server_log
    assert not leaked


def test_a_wrong_key_fails_the_handshake(psk_pair):
    identity, key = read_psk(psk_pair[1])
    wrong = bytes(b ^ 1 for b in key[:1]) + key[1:]
    port = free_port()
    server = start_s_server(port, identity, key)
    try:
        status, reply = s_client_exchange(port, identity, wrong, b"hello\n")
        assert status != 0 and b"olleh" not in reply
    finally:
        stop_process(server, timeout_s=5)


def _python313() -> str | None:
    """A Python whose ssl has PSK callbacks (3.13+), or None."""
    candidates = [*sorted(glob.glob("/root/.pyenv/versions/3.1[3-9]*/bin/python3")), shutil.which("python3.13")]
    probe = "import ssl, sys; sys.exit(not hasattr(ssl.SSLContext, 'set_psk_client_callback'))"
    for python in filter(None, candidates):
        if subprocess.run([python, "-c", probe], capture_output=True, timeout=30).returncode == 0:
            return python
    return None


HELPER_SESSION = """
import socket, sys, threading
from adapters.connectors.tls_psk_helper import psk_client_context, psk_server_context
server_file, client_file = sys.argv[1], sys.argv[2]
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
answer = {}
def serve():
    conn, _ = listener.accept()
    try:
        with psk_server_context(server_file).wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(100)[::-1])
    except OSError as exc:
        answer["server"] = type(exc).__name__
thread = threading.Thread(target=serve)
thread.start()
try:
    with psk_client_context(client_file).wrap_socket(socket.create_connection(("127.0.0.1", port))) as tls:
        tls.sendall(b"qkms")
        print(tls.recv(100).decode(), tls.version(), tls.cipher()[0])
except OSError as exc:
    print("refused", type(exc).__name__)
thread.join()
"""


def test_the_python_313_helper_uses_the_same_files(psk_pair, tmp_path):
    python = _python313()
    if python is None:
        pytest.skip("no Python 3.13 on this machine (ssl PSK callbacks need it)")
    env = {"PYTHONPATH": str(REPO)}
    good = subprocess.run([python, "-c", HELPER_SESSION, str(psk_pair[1]), str(psk_pair[0])],
                          capture_output=True, text=True, timeout=30, env=env)
    reply, version, cipher = good.stdout.split() or ["", "", ""]
    # an external PSK's hash is SHA-256: Python picks ChaCha20-Poly1305 or AES-128-GCM
    assert (reply, version, cipher[-7:]) == ("smkq", "TLSv1.3", "_SHA256"), good.stderr[-800:]
    other = tmp_path / "other.psk"
    identity, key = read_psk(psk_pair[0])
    other.write_text(f"{identity}:{bytes(32).hex()}\n")
    bad = subprocess.run([python, "-c", HELPER_SESSION, str(psk_pair[1]), str(other)],
                         capture_output=True, text=True, timeout=30, env=env)
    assert bad.stdout.startswith("refused"), bad.stdout + bad.stderr[-800:]
