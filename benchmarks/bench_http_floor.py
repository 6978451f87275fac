"""Benchmark: the floor under bench_etsi_roundtrip.py, what serving alone costs here.

The same clients and the same round trip (enc_keys by the master, dec_keys by the slave,
over mutual TLS with connection reuse) against servers that do no key work at all and
answer every request with one fixed ETSI key container:

* ``flask``: a hello-world Flask app in gunicorn with qkms's gevent worker settings
  (``worker_class gevent``, the node's certificate, client certificates required);
* ``flask-node-worker``: the same app in the node's own gevent worker
  (``qkms.gevent_worker.NodeWorker`` with its default settings: handshake, header and
  request deadlines, request framing checks, responses in one TLS record);
* ``threads``: the least Python can do per request, a blocking TLS socket per
  connection in its own thread, the request read and a fixed answer written with no
  HTTP library, no WSGI and no framework.

Each server runs as ``--workers`` processes sharing the port (SO_REUSEPORT), on the same
two cores as the clients. What a server reaches here bounds what any node built on it
can reach: the node must also parse JSON, talk to Redis and seal keys.

    .venv/bin/python benchmarks/bench_http_floor.py --server threads flask flask-node-worker
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_etsi_roundtrip import measure, one_node_layout  # noqa: E402
from kms.config import load_config  # noqa: E402
from qkms.runner import stop_process, wait_for_port  # noqa: E402

#: One key container of the size enc_keys and dec_keys answer for a single 256-bit key
#: (fixed placeholder bytes, never a key: these servers make none).
BODY = json.dumps({"keys": [{"key_ID": "bc490419-7d60-487f-adc1-4ddcc177c139",
                             "key": "wHHVxRwDJs3/bXd38GHP3oe4svTuRpZS0yCC7x4Ly+s="}]}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(BODY)) + BODY

FLASK_APP = textwrap.dedent(f"""
    from flask import Flask, Response
    app = Flask(__name__)
    BODY = {BODY!r}

    @app.route("/api/v1/keys/<path:rest>", methods=["GET", "POST"])
    def keys(rest):
        return Response(BODY, mimetype="application/json")
""")


def tls_settings(manifest: dict) -> tuple[str, str, str]:
    """The node's certificate, key and CA from the layout's node config."""
    tls = load_config(Path(manifest["nodes"]["KME-1"]["config"])).tls
    return str(tls.cert), str(tls.key), str(tls.ca)


def serve_threads(port: int, cert: str, key: str, ca: str) -> None:
    """One process of the ``threads`` server: a thread per TLS connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=_answer_all, args=(context, connection), daemon=True).start()


def _answer_all(context: ssl.SSLContext, connection: socket.socket) -> None:
    try:
        with context.wrap_socket(connection, server_side=True) as tls:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    data = tls.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                length = _content_length(head)
                while len(pending) < length:
                    pending += tls.recv(65536)
                pending = pending[length:]
                tls.sendall(RESPONSE)
    except (OSError, ssl.SSLError):
        return


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def start_threads(port: int, workers: int, tls: tuple[str, str, str]) -> list[mp.Process]:
    processes = [mp.get_context("fork").Process(target=serve_threads, args=(port, *tls), daemon=True)
                 for _ in range(workers)]
    for process in processes:
        process.start()
    return processes


#: gunicorn worker class of each Flask server.
FLASK_WORKERS = {"flask": "gevent", "flask-node-worker": "qkms.gevent_worker.NodeWorker"}


def start_flask(port: int, workers: int, tls: tuple[str, str, str], directory: Path,
                worker_class: str) -> subprocess.Popen:
    (directory / "floor_app.py").write_text(FLASK_APP)
    cert, key, ca = tls
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(directory), "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--worker-class", worker_class, "--reuse-port",
         "--certfile", cert, "--keyfile", key, "--ca-certs", ca, "--cert-reqs", str(int(ssl.CERT_REQUIRED)),
         "--log-level", "warning", "floor_app:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})


def run(server: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="qkms-floor-") as tmp:
        manifest = one_node_layout(Path(tmp))
        port = int(manifest["nodes"]["KME-1"]["url"].rsplit(":", 1)[1].split("/")[0])
        tls = tls_settings(manifest)
        if server == "threads":
            processes = start_threads(port, args.workers, tls)
            pids = [p.pid for p in processes]
        else:
            gunicorn = start_flask(port, args.workers, tls, Path(tmp), FLASK_WORKERS[server])
            pids = [gunicorn.pid]
        try:
            wait_for_port("127.0.0.1", port, 60, None)
            result = measure(manifest, "wire", args.clients, args.processes, args.seconds, pids)
        finally:
            if server == "threads":
                for process in processes:
                    process.kill()
                    process.join()
            else:
                stop_process(gunicorn)
    result["cpu_ms_per_round_trip"]["server"] = result["cpu_ms_per_round_trip"].pop("node")
    result["cpu_ms_per_round_trip"].pop("redis")
    return {"server": server, "workers": args.workers, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", nargs="+", default=["threads", "flask"], choices=["threads", *FLASK_WORKERS])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    for server in args.server:
        print(json.dumps(run(server, args)), flush=True)


if __name__ == "__main__":
    main()
