"""Running a node: embedded Redis (if no URL is configured), the supervised link
manager, and gunicorn over mutual TLS.

The gunicorn master owns the embedded Redis and the link manager, each under a
supervisor that restarts it when it exits: it starts both before forking workers and
stops them after the last worker is gone. Each
worker opens its own connections.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

from gunicorn.app.base import BaseApplication

from etsi_api.app import create_app
from etsi_api.km_client import HttpPeerTransport
from etsi_api.metrics import process_exited, use_multiprocess_dir
from etsi_api.monitoring import Monitoring
from kms.admission import Admission, AdmissionLimits
from kms.config import NodeConfig, RedisConfig, ServerConfig, TlsConfig
from kms.errors import ConfigError
from kms.link_manager_state import LinkManagerState
from kms.node import NodeRuntime, node_sealer, storage_limits
from kms.pki.tls import server_context
from kms.storage import open_storage, open_telemetry
from kms.storage.embedded_redis import EmbeddedRedis, die_with_parent
from qkms.audit_log import install_audit_log
from qkms.gevent_worker import NodeWorker
from qkms.linkd import validate_link_sources
from qkms.supervisor import Backoff, Supervisor

log = logging.getLogger("qkms.server")

CHECK_TIMEOUT_S = 120.0


def _worker_dies_with_master(server, worker) -> None:
    """A worker orphaned by a crashed master must not keep the port (or serve) any longer."""
    die_with_parent(signal.SIGKILL)


def _worker_exited(server, worker) -> None:
    process_exited(worker.pid)


def metrics_dir(config: NodeConfig) -> Path:
    """Where every process of the node keeps its Prometheus metrics (etsi_api.metrics):
    in the temp directory, one per data directory, not in the data directory itself.
    The processes write their metrics through memory-mapped files, and a process that
    touches a mapped page its full filesystem cannot back dies of SIGBUS: a full disk
    under the data directory must cost 503s, not every worker (tests/integration/
    test_fault_disk.py)."""
    digest = hashlib.sha256(str(config.redis.data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"qkms-metrics-{digest}"


def _node_tls_context(tls: TlsConfig, config, default_ssl_context_factory) -> ssl.SSLContext:
    """gunicorn's context: the node's TLS policy (kms.pki.tls), its CRL loaded. The gevent
    worker makes its own contexts that follow CRL changes (qkms.gevent_worker)."""
    return server_context(tls.cert, tls.key, tls.ca, tls.crl)


def _concurrency_settings(server: ServerConfig, tls: TlsConfig) -> dict:
    """How each worker serves many keep-alive connections: greenlets (gevent: one event
    loop per process, no thread hand-offs per request) or a thread pool (gthread)."""
    if server.worker_class == "gthread":
        return {"worker_class": "gthread", "threads": server.threads}
    # gevent patches the standard library inside each worker, after the master has
    # imported ssl. Its warning is about SSL objects made before patching; workers make
    # theirs afterwards (gunicorn's server context, the KM-channel and device clients),
    # and the one module it names (redis.asyncio) is not used.
    warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl has already been imported")
    return {"worker_class": NodeWorker.configured(server, tls), "worker_connections": server.worker_connections}


class NodeServer(BaseApplication):
    """gunicorn workers (gevent by default) with keep-alive, TLS with required client certificates."""

    def __init__(self, config: NodeConfig, redis: RedisConfig, multiprocess_dir: Path | None = None):
        self._config = config
        self._redis = redis
        self._multiprocess_dir = multiprocess_dir
        super().__init__()

    def load_config(self) -> None:
        node, server = self._config, self._config.server
        settings = {
            "bind": f"{node.listen.host}:{node.listen.port}",
            "workers": server.workers,
            **_concurrency_settings(server, node.tls),
            "keepalive": server.keepalive_s,
            # Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new
            # connections over the workers; on one shared socket the first worker awake
            # could take nearly all long-lived keep-alive connections.
            "reuse_port": True,
            "certfile": str(node.tls.cert),
            "keyfile": str(node.tls.key),
            "ca_certs": str(node.tls.ca),
            "cert_reqs": ssl.CERT_REQUIRED,
            "ssl_context": partial(_node_tls_context, node.tls),
            "do_handshake_on_connect": True,
            "accesslog": None,
            "proc_name": f"qkms-{node.kme_id}",
            "graceful_timeout": 10,
            "timeout": 60,
            "control_socket_disable": True,
            "post_fork": _worker_dies_with_master,
            "child_exit": _worker_exited,
        }
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self):
        config = self._config
        install_audit_log(config.audit)
        storage = open_storage(self._redis, config.kme_id, node_sealer(config), storage_limits(config))
        runtime = NodeRuntime(config, storage, HttpPeerTransport(config))
        view, node = runtime.current()
        admission = Admission(storage.admission, AdmissionLimits.for_node(config))
        monitoring = Monitoring(storage.board, storage.pools, open_telemetry(self._redis, config.kme_id),
                                self._multiprocess_dir)
        return create_app(view.config, node.service, storage.store, node.network, node.responders, admission,
                          runtime, monitoring)


def ensure_listen_port_free(config: NodeConfig, wait_s: float = 5.0) -> None:
    """ConfigError if another socket listens on the node's address after ``wait_s``
    (time for a previous node's workers to exit). Workers bind with SO_REUSEPORT, so
    without this check a second node on the same port would share the connections."""
    host, port = config.listen.host, config.listen.port
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ConfigError(f"listen: {host}:{port} is already in use ({exc.strerror})") from None
        time.sleep(0.2)


def check_link_sources(config: NodeConfig, config_path: Path) -> None:
    """ConfigError naming ``links[i].source.<setting>`` if a link's source section is invalid.

    The sources of this node's own links are built, never started, in a child process
    (``qkms linkd --check``), so the modules they import (the simulator's NumPy and
    SciPy) stay out of this process, which becomes the gunicorn master of the workers."""
    if not config.local_links():
        validate_link_sources(config)
        return
    command = [sys.executable, "-m", "qkms", "linkd", "--config", str(config_path), "--check"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"links: checking the link sources took longer than {CHECK_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise ConfigError(lines[-1] if lines else f"links: checking the link sources failed ({result.returncode})")


def start_link_manager(config_path: Path, embedded_url: str | None) -> subprocess.Popen:
    """The node's link manager as a child process that dies with this one (it arranges
    that itself, see ``bind_to_parent``) and, in its own process group, leaves Ctrl-C
    to this process, which stops it."""
    embedded = ["--redis-url", embedded_url] if embedded_url else []
    return subprocess.Popen([sys.executable, "-m", "qkms", "linkd", "--config", str(config_path), *embedded,
                             "--parent-pid", str(os.getpid())], process_group=0)


def supervise_link_manager(config: NodeConfig, config_path: Path, embedded_url: str | None) -> Supervisor:
    """Start the link manager under a supervisor that records its state in the node's storage."""
    storage = open_storage(config.redis.reached_at(embedded_url), config.kme_id, node_sealer(config),
                           storage_limits(config))
    state = LinkManagerState.for_node(storage.link_manager, config)
    supervisor = Supervisor("link manager", partial(start_link_manager, config_path, embedded_url), state.record)
    supervisor.start()
    return supervisor


#: Restarts of the embedded Redis: it starts in well under a second, so retry soon.
REDIS_BACKOFF = Backoff(initial_s=0.5, maximum_s=5.0, stable_after_s=60.0)


def supervise_embedded_redis(embedded: EmbeddedRedis) -> Supervisor:
    """Start the node's embedded Redis under a supervisor and wait until it answers. A
    server that exits is started again (it reloads its AOF): Redis exits when it cannot
    append to its AOF under ``appendfsync always`` (a full disk), and the node must
    recover without an operator once space returns. Its state is not recorded in the
    store (the store is what is down); the supervisor's log lines say it."""
    supervisor = Supervisor("embedded Redis", embedded.spawn, lambda record: None, REDIS_BACKOFF)
    supervisor.start()
    try:
        embedded.wait_until_up()
    except BaseException:
        supervisor.stop()
        raise
    return supervisor


def serve(config: NodeConfig, config_path: Path) -> None:
    """Run the node until SIGTERM/SIGINT: embedded Redis (unless a URL is configured),
    the supervised link manager (if the node has links) and the HTTPS workers; stop
    them all after."""
    embedded = EmbeddedRedis(config.redis.data_dir, config.redis.appendfsync) if config.redis.embedded else None
    redis_supervisor = supervise_embedded_redis(embedded) if embedded else None
    embedded_url = embedded.url if embedded else None
    owner = os.getpid()
    # Before anything forks: the link manager and every worker write their metrics there.
    use_multiprocess_dir(metrics_dir(config))
    # A node of a network runs its link manager even without links of its own yet: it
    # exchanges admin changes and may be given a link while it runs.
    networked = bool(config.local_links() or config.peers)
    supervisor = supervise_link_manager(config, config_path, embedded_url) if networked else None
    try:
        NodeServer(config, config.redis.reached_at(embedded_url), metrics_dir(config)).run()
    finally:
        if os.getpid() == owner:
            if supervisor is not None:
                supervisor.stop()
            if redis_supervisor is not None:
                redis_supervisor.stop()
            shutil.rmtree(metrics_dir(config), ignore_errors=True)  # counters start from zero next time
