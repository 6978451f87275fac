"""Running a node: embedded Redis (if no URL is configured), the supervised link
manager, and gunicorn over mutual TLS.

The gunicorn master owns the embedded Redis and the link manager's supervisor: it
starts both before forking workers and stops them after the last worker is gone. Each
worker opens its own connections.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from functools import partial
from pathlib import Path

from gunicorn.app.base import BaseApplication

from etsi_api.app import create_app
from etsi_api.km_client import HttpPeerTransport
from kms.admission import Admission, AdmissionLimits
from kms.config import NodeConfig, RedisConfig, ServerConfig, TlsConfig
from kms.errors import ConfigError
from kms.link_manager_state import LinkManagerState
from kms.node import assemble_node, node_sealer, storage_limits
from kms.pki.tls import server_context
from kms.storage import open_storage
from kms.storage.embedded_redis import EmbeddedRedis, die_with_parent
from qkms.gevent_worker import NodeWorker
from qkms.linkd import validate_link_sources
from qkms.supervisor import Supervisor

log = logging.getLogger("qkms.server")

CHECK_TIMEOUT_S = 120.0


def _worker_dies_with_master(server, worker) -> None:
    """A worker orphaned by a crashed master must not keep the port (or serve) any longer."""
    die_with_parent(signal.SIGKILL)


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

    def __init__(self, config: NodeConfig, redis: RedisConfig):
        self._config = config
        self._redis = redis
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
        }
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self):
        config = self._config
        transport = HttpPeerTransport(config) if config.peers else None
        storage = open_storage(self._redis, config.kme_id, node_sealer(config), storage_limits(config))
        node = assemble_node(config, storage, transport)
        admission = Admission(storage.admission, AdmissionLimits.for_node(config))
        return create_app(config, node.service, storage.store, node.network, node.responders, admission)


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


def serve(config: NodeConfig, config_path: Path) -> None:
    """Run the node until SIGTERM/SIGINT: embedded Redis (unless a URL is configured),
    the supervised link manager (if the node has links) and the HTTPS workers; stop
    them all after."""
    embedded = EmbeddedRedis(config.redis.data_dir, config.redis.appendfsync) if config.redis.embedded else None
    embedded_url = embedded.start().url if embedded else None
    owner = os.getpid()
    supervisor = supervise_link_manager(config, config_path, embedded_url) if config.local_links() else None
    try:
        NodeServer(config, config.redis.reached_at(embedded_url)).run()
    finally:
        if os.getpid() == owner:
            if supervisor is not None:
                supervisor.stop()
            if embedded is not None:
                embedded.stop()
