"""Benchmark: ETSI 014 enc_keys + dec_keys round trips over mutual TLS with connection reuse.

Starts a throwaway node (``qkms serve``, embedded Redis) and drives it with
``--clients`` concurrent SAE pairs, each in a process of its own as separate
applications would be (``--processes N`` packs them into N processes of several
threads instead; their GIL then adds client-side latency); each client keeps one
TLS connection per SAE. A round trip is one enc_keys (master) plus
one dec_keys of the same key_ID (slave). Prints round trips per second, the p50 / p99
round-trip latency, the p50 / p99 latency of single requests, and the CPU time per
round trip of the node's processes, its Redis and the clients (on a shared host the
CPU cost moves with the host's speed too, but less than the latencies do).

Client and server share this machine's cores, so the default client is lean: it
writes and parses HTTP/1.1 itself on a keep-alive TLS socket, costing about as much
CPU as a native SAE would. ``--client lean`` uses ``http.client`` (about twice the
client CPU), ``--client httpx`` the product's ``Etsi014Client`` (about 1 ms of CPU per
request).

    .venv/bin/python benchmarks/bench_etsi_roundtrip.py --clients 1 16
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.etsi014_client import client_tls_context  # noqa: E402
from qkms.layout import NodePlan, free_port, write_layout  # noqa: E402
from qkms.runner import sae_client  # noqa: E402
from tests.support.processes import NodeProcess  # noqa: E402


def node_endpoint(manifest: dict, sae_id: str) -> tuple[str, int, ssl.SSLContext]:
    """Host, port and client TLS context with which ``sae_id`` reaches its node."""
    sae = manifest["saes"][sae_id]
    url = urlparse(manifest["nodes"][sae["node"]]["url"])
    return url.hostname, url.port, client_tls_context(manifest["ca"], sae["cert"], sae["key"])


class LeanSae:
    """One SAE on one keep-alive ``http.client`` connection."""

    def __init__(self, manifest: dict, sae_id: str):
        host, port, context = node_endpoint(manifest, sae_id)
        self._conn = http.client.HTTPSConnection(host, port, context=context)

    def call(self, method: str, path: str, body: bytes | None = None) -> dict:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self._conn.request(method, "/api/v1/keys/" + path, body=body, headers=headers)
        response = self._conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status}")
        return json.loads(data)

    def enc_key_id(self, slave: str) -> str:
        return self.call("POST", f"{slave}/enc_keys", b'{"number": 1}')["keys"][0]["key_ID"]

    def dec_key(self, master: str, key_id: str) -> None:
        self.call("GET", f"{master}/dec_keys?key_ID={key_id}")


class WireSae(LeanSae):
    """One SAE writing and reading HTTP/1.1 itself on one keep-alive TLS socket, as a
    client in C would: no header objects (``http.client`` parses every response's
    headers with the ``email`` package, about a fifth of its CPU)."""

    def __init__(self, manifest: dict, sae_id: str):
        host, port, context = node_endpoint(manifest, sae_id)
        self._sock = context.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
        self._host = f"Host: {host}:{port}\r\n".encode()
        self._pending = b""

    def call(self, method: str, path: str, body: bytes | None = None) -> dict:
        head = f"{method} /api/v1/keys/{path} HTTP/1.1\r\n".encode() + self._host
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self._sock.sendall(head + b"\r\n" + (body or b""))
        status, data = self._response()
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status}")
        return json.loads(data)

    def _response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self._pending:
            self._pending += self._recv()
        head, _, rest = self._pending.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += self._recv()
        self._pending = rest[length:]
        return int(lines[0].split()[1]), rest[:length]

    def _recv(self) -> bytes:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("the node closed the connection")
        return data


class ProductSae:
    """The same calls through the product's httpx-based Etsi014Client."""

    def __init__(self, manifest: dict, sae_id: str):
        self._client = sae_client(manifest, sae_id)

    def call(self, method: str, path: str, body: bytes | None = None) -> dict:
        return self._client.status(path.split("/")[0])

    def enc_key_id(self, slave: str) -> str:
        return self._client.enc_keys(slave)[0].key_id

    def dec_key(self, master: str, key_id: str) -> None:
        self._client.dec_keys(master, [key_id], use_get=True)


CLIENTS = {"lean": LeanSae, "wire": WireSae, "httpx": ProductSae}


def tree_cpu_s(root_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by ``root_pid`` and its descendants, by
    command name (Linux /proc; children that already exited are not counted)."""
    stats = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_path.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        stats[int(stat_path.parent.name)] = (name, int(fields[1]), int(fields[11]) + int(fields[12]))
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    family = {root_pid}
    while True:
        grown = family | {pid for pid, (_, ppid, _) in stats.items() if ppid in family}
        if grown == family:
            break
        family = grown
    for pid in family & stats.keys():
        name, _, ticks = stats[pid]
        used[name] = used.get(name, 0.0) + ticks * tick_s
    return used


def trees_cpu_s(root_pids: list[int]) -> dict[str, float]:
    """``tree_cpu_s`` summed over several process trees (the replicas of a node)."""
    used: dict[str, float] = {}
    for pid in root_pids:
        for name, cpu_s in tree_cpu_s(pid).items():
            used[name] = used.get(name, 0.0) + cpu_s
    return used


def client_process(manifest: dict, kind: str, threads: int, seconds: float, start_at: float, out: mp.Queue) -> None:
    import threading

    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def connect():
        master, slave = (CLIENTS[kind](manifest, sae) for sae in ("sae-1", "sae-2"))
        master.call("GET", "sae-2/status")
        slave.call("GET", "sae-1/status")
        return master, slave

    def run() -> None:
        mine: list[float] = []
        failed = 0
        master, slave = connect()
        while time.time() < start_at:
            time.sleep(0.001)
        while time.time() < start_at + seconds:
            t0 = time.perf_counter()
            try:
                key_id = master.enc_key_id("sae-2")
                t1 = time.perf_counter()
                slave.dec_key("sae-1", key_id)
            except (RuntimeError, OSError):
                # An error status or a lost connection: counted, and the pair reconnects
                # (a connection left mid-response cannot be reused).
                failed += 1
                master, slave = _reconnect(connect)
                continue
            mine.append((time.perf_counter() - t0, t1 - t0, time.perf_counter() - t1))
        with lock:
            latencies.extend(mine)
            failures[0] += failed

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_start_s = time.process_time()
    for worker in workers:
        worker.join()
    out.put((latencies, time.process_time() - cpu_start_s, failures[0]))


def _reconnect(connect):
    """A new SAE pair from ``connect``, retried while the node does not answer."""
    while True:
        try:
            return connect()
        except (RuntimeError, OSError):
            time.sleep(0.05)


def measure(manifest: dict, kind: str, clients: int, processes: int | None, seconds: float,
            node_pids: list[int]) -> dict:
    """Round trips through the node of ``manifest`` (its URL may be a load balancer's) by
    ``clients`` SAE pairs for ``seconds``; CPU counted for ``node_pids`` and their children."""
    processes = min(processes or clients, clients)
    per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
    out: mp.Queue = mp.get_context("fork").Queue()
    start_at = time.time() + 2.0
    procs = [mp.get_context("fork").Process(target=client_process, args=(manifest, kind, n, seconds, start_at, out))
             for n in per_process]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at - time.time()))
    node_cpu_before = trees_cpu_s(node_pids)
    time.sleep(seconds)
    node_cpu_after = trees_cpu_s(node_pids)
    reports = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    samples = np.concatenate([np.asarray(latencies, dtype=float).reshape(-1, 3) for latencies, _, _ in reports])
    round_trip, per_request = samples[:, 0], samples[:, 1:].ravel()
    node_cpu_s = {name: node_cpu_after[name] - node_cpu_before.get(name, 0.0) for name in node_cpu_after}
    redis_cpu_s = sum(used for name, used in node_cpu_s.items() if name.startswith("redis"))
    return {"clients": clients, "round_trips": int(round_trip.size),
            "failures": sum(failed for _, _, failed in reports),
            "round_trips_per_s": round(round_trip.size / seconds, 1),
            "p50_ms": _ms(round_trip, 50), "p99_ms": _ms(round_trip, 99),
            "request_p50_ms": _ms(per_request, 50), "request_p99_ms": _ms(per_request, 99),
            "cpu_ms_per_round_trip": {
                "node": _per(sum(node_cpu_s.values()) - redis_cpu_s, round_trip.size),
                "redis": _per(redis_cpu_s, round_trip.size),
                "clients": _per(sum(client_cpu for _, client_cpu, _ in reports), round_trip.size)}}


def _per(cpu_s: float, round_trips: int) -> float:
    return round(cpu_s * 1e3 / max(round_trips, 1), 3)


def _ms(values: np.ndarray, percentile: float) -> float | None:
    return round(float(np.percentile(values, percentile)) * 1e3, 2) if values.size else None


def one_node_layout(root: Path) -> dict:
    """The manifest of node KME-1 with SAEs sae-1 and sae-2, written under ``root``."""
    return write_layout(root, [NodePlan("KME-1", ("sae-1", "sae-2"), free_port())]).to_dict()


def configure_node(config_path: Path, server: dict, redis: dict | None = None, appendfsync: str = "always",
                   port: int | None = None, limits: bool = True) -> int:
    """Rewrite the layout's node config: gunicorn ``server`` settings, the config ``redis``
    section (default: the embedded Redis with ``appendfsync``), ``port`` (default: as
    written), per-SAE ``limits`` on (far above what the node serves) or off. Returns the
    port the node will listen on."""
    config = yaml.safe_load(config_path.read_text())
    config["server"] = server
    if redis is None:
        config["redis"]["appendfsync"] = appendfsync
    else:
        config["redis"] = redis
    if port is not None:
        config["listen"]["port"] = port
    # Every client process is the same SAE pair: per-SAE limits stay on (their cost
    # is measured) but far above what the node can serve; off, admission makes no
    # Redis call at all.
    config["limits"] = {"requests_per_s_per_sae": 1e6 if limits else None, "request_burst_per_sae": 10**6,
                        "concurrent_requests_per_sae": 10_000 if limits else None}
    config_path.write_text(yaml.safe_dump(config))
    return config["listen"]["port"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--processes", type=int, default=None, help="client processes (default: one per client)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--worker-class", default="gevent", choices=["gevent", "gthread"])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the node")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (gthread)")
    parser.add_argument("--appendfsync", default="always", choices=["always", "everysec"])
    parser.add_argument("--client", default="wire", choices=sorted(CLIENTS))
    parser.add_argument("--limits", default="on", choices=["on", "off"],
                        help="per-SAE rate and concurrency limits (off: their Redis calls are not made)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qkms-bench-") as tmp:
        root = Path(tmp)
        manifest = one_node_layout(root)
        config_path = Path(manifest["nodes"]["KME-1"]["config"])
        server = {"worker_class": args.worker_class, "workers": args.workers, "threads": args.threads}
        port = configure_node(config_path, server, appendfsync=args.appendfsync, limits=args.limits == "on")
        node = NodeProcess(config_path, port, root / "node.log").start()
        try:
            for clients in args.clients:
                result = measure(manifest, args.client, clients, args.processes, args.seconds, [node.process.pid])
                result.update(worker_class=args.worker_class, workers=args.workers, threads=args.threads,
                              appendfsync=args.appendfsync, client=args.client, limits=args.limits,
                              client_processes=min(args.processes or clients, clients))
                print(json.dumps(result), flush=True)
        finally:
            node.stop()


if __name__ == "__main__":
    main()
