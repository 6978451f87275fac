"""Benchmark: what the node's own application costs per round trip, without its server.

The app ``qkms serve`` builds (qkms.server.NodeServer.load: the ETSI 014 blueprint,
authorization, per-SAE admission, the key service, sealing, the audit trail, metrics)
on an embedded Redis, called directly through WSGI in this one process: no TLS, no HTTP
parsing, no gevent, no clients on the same cores. A round trip is the benchmark's usual
pair, enc_keys by sae-1 (POST ``{"number": 1}``) and dec_keys of that key_ID by sae-2
(GET). Prints the CPU milliseconds per round trip of this process (Redis's own CPU is
not in it). Added to what a server costs with no key work
(``bench_http_floor.py --server flask-node-worker``) it accounts for what
``bench_etsi_roundtrip.py`` measures; ``--profile`` prints where the time goes.

    .venv/bin/python benchmarks/bench_app_inprocess.py --limits on off
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from benchmarks.bench_etsi_roundtrip import configure_node, one_node_layout  # noqa: E402
from etsi_api.auth import PEER_CERT_ENVIRON_KEY  # noqa: E402
from kms.config import RedisConfig, load_config  # noqa: E402
from kms.pki.files import read_certificate  # noqa: E402
from kms.storage.embedded_redis import EmbeddedRedis  # noqa: E402
from qkms.audit_log import AUDIT_LOGGER  # noqa: E402


def certificate_der(manifest: dict, sae_id: str) -> bytes:
    return read_certificate(manifest["saes"][sae_id]["cert"]).public_bytes(Encoding.DER)


def environ(method: str, path: str, query: str, body: bytes, peer_der: bytes) -> dict:
    """A WSGI environ as the node's gevent worker hands it over (peer certificate included)."""
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8443", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8443",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            PEER_CERT_ENVIRON_KEY: peer_der}


class RoundTrips:
    """enc_keys + dec_keys round trips through ``app``."""

    def __init__(self, app, manifest: dict):
        self._app = app
        self._master, self._slave = certificate_der(manifest, "sae-1"), certificate_der(manifest, "sae-2")

    def _call(self, env: dict) -> bytes:
        statuses: list[str] = []
        body = b"".join(self._app(env, lambda status, headers, exc_info=None: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{env['REQUEST_METHOD']} {env['PATH_INFO']}: {statuses[0]}")
        return body

    def one(self) -> None:
        answer = self._call(environ("POST", "/api/v1/keys/sae-2/enc_keys", "", b'{"number": 1}', self._master))
        key_id = json.loads(answer)["keys"][0]["key_ID"]
        self._call(environ("GET", "/api/v1/keys/sae-1/dec_keys", f"key_ID={key_id}", b"", self._slave))


def close_audit_handlers() -> None:
    """Let go of the node's audit file (the next measurement's node has another)."""
    logger = logging.getLogger(AUDIT_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def measure(limits: bool, round_trips: int, profile_order: str | None) -> dict:
    from qkms.server import NodeServer

    with tempfile.TemporaryDirectory(prefix="qkms-bench-app-") as tmp:
        root = Path(tmp)
        metrics_dir = root / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        manifest = one_node_layout(root)
        config_path = Path(manifest["nodes"]["KME-1"]["config"])
        configure_node(config_path, {"worker_class": "gevent", "workers": 1}, limits=limits)
        config = load_config(config_path)
        with EmbeddedRedis(config.redis.data_dir) as redis_server:
            app = NodeServer(config, RedisConfig(url=redis_server.url), metrics_dir).load()
            trips = RoundTrips(app, manifest)
            for _ in range(300):  # warm connections, caches and the interpreter
                trips.one()
            start = time.process_time()
            for _ in range(round_trips):
                trips.one()
            cpu_ms = (time.process_time() - start) / round_trips * 1e3
            if profile_order:
                profiler = cProfile.Profile(time.process_time)
                profiler.runcall(lambda: [trips.one() for _ in range(round_trips)])
                pstats.Stats(profiler, stream=sys.stderr).sort_stats(profile_order).print_stats(50)
            close_audit_handlers()
    return {"limits": "on" if limits else "off", "round_trips": round_trips, "cpu_ms_per_round_trip": round(cpu_ms, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--profile", nargs="?", const="cumulative", choices=["cumulative", "tottime"],
                        help="also print a cProfile of the round trips (stderr), sorted by this column")
    args = parser.parse_args()
    for limits in args.limits:
        print(json.dumps(measure(limits == "on", args.round_trips, args.profile)), flush=True)


if __name__ == "__main__":
    main()
