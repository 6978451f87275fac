"""Prometheus metrics of one node at ``GET /metrics`` (admin or scraper certificate).

Two kinds of value, both in every answer:

* **events**, counted where they happen, in every gunicorn worker and in the link
  manager: responses by endpoint, method and status, request latency per endpoint,
  keys and key bits delivered, route hops of deliveries, alarms, Redis PING round
  trips. ``qkms serve`` gives the node's processes one directory for prometheus-client's
  multiprocess mode (:func:`use_multiprocess_dir`; ``<redis.data_dir>/metrics``,
  emptied at every start), so an answer sums every process, whichever worker serves it;
* **state**, read from the node's storage when scraped (:class:`NodeStateCollector`):
  pool levels, key generation and consumption totals per link half, QBER, secret key
  rate, source health, aborted frames, the link manager's state.

Labels are link ids, KME_IDs, endpoint names and status codes: never key material,
key_IDs or SAE_IDs.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from etsi_api.auth import calling_metrics_reader
from kms.errors import ConfigError

if TYPE_CHECKING:
    from etsi_api.state_metrics import NodeStateCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REDIS_PING_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
HOP_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 16)

bp = Blueprint("metrics", __name__)


def use_multiprocess_dir(directory: Path) -> None:
    """Make every metric this process and its children create from now on a file under
    ``directory`` (emptied first: counters start from zero with the node). Called by
    ``qkms serve`` before it starts the link manager and the workers."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    found = directory.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise ConfigError(f"{directory} is not a directory of this user: metrics refused")
    directory.chmod(0o700)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(directory)
    # prometheus-client chooses its value class when first imported: choose again.
    from prometheus_client import values
    values.ValueClass = values.get_value_class()


def process_exited(pid: int) -> None:
    """gunicorn's ``child_exit``: drop the live gauges of a worker that exited (its
    counters stay counted)."""
    from prometheus_client import multiprocess

    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)


class ApiMetrics:
    """The web worker's event metrics; summed over processes through ``multiprocess_dir``."""

    def __init__(self, multiprocess_dir: Path | None = None):
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        r = self.registry
        self.responses = Counter("qkms_http_responses", "Responses by endpoint, method and status",
                                 ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("qkms_http_request_duration_seconds", "Time to serve a request, per endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.keys = Counter("qkms_keys_delivered", "Keys handed to SAEs", ["endpoint"], registry=r)
        self.key_bits = Counter("qkms_key_bits_delivered", "Key bits handed to SAEs", ["endpoint"], registry=r)
        self.hops = Histogram("qkms_delivery_route_hops", "Links crossed by the keys of one enc_keys "
                              "(0: both SAEs on this node; above 1: trusted-node relay)",
                              buckets=HOP_BUCKETS, registry=r)
        self.redis_ping = Histogram("qkms_redis_ping_seconds", "Round trip of a Redis PING", ["process"],
                                    buckets=REDIS_PING_BUCKETS_S, registry=r)

    def exposition(self, state: NodeStateCollector | None) -> bytes:
        """The text format of every process's events (or this process's, outside
        multiprocess mode) and of the node's state now."""
        registry = CollectorRegistry(auto_describe=False)
        if self.multiprocess_dir is not None:
            from prometheus_client.multiprocess import MultiProcessCollector
            MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        else:
            registry.register(self.registry)
        if state is not None:
            registry.register(state)
        return generate_latest(registry)


def record_delivery(endpoint: str, keys: list, enc: bool = False) -> None:
    """Count keys handed out by ``endpoint``; for an enc_keys also the links they crossed."""
    metrics: ApiMetrics | None = current_app.extensions.get("qkms.metrics")
    if metrics is None or not keys:
        return
    metrics.keys.labels(endpoint).inc(len(keys))
    metrics.key_bits.labels(endpoint).inc(sum(len(key.material) * 8 for key in keys))
    if enc:
        provenance = keys[0].provenance
        routes = [provenance.route] if provenance.route else list(provenance.routes)
        metrics.hops.observe(max((len(route) - 1 for route in routes), default=0))


def _start_timer() -> None:
    g.qkms_started = time.perf_counter()


def _count_response(response: Response) -> Response:
    metrics: ApiMetrics = current_app.extensions["qkms.metrics"]
    endpoint = request.endpoint or "unmatched"
    metrics.responses.labels(endpoint, request.method, str(response.status_code)).inc()
    started = g.get("qkms_started")
    if started is not None:
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
    return response


@bp.get("/metrics")
def scrape():
    calling_metrics_reader()
    metrics: ApiMetrics = current_app.extensions["qkms.metrics"]
    body = metrics.exposition(current_app.extensions.get("qkms.state_collector"))
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask, metrics: ApiMetrics, state: Callable[[], object] | None = None) -> None:
    """Count every request of ``app`` (register first, so every later hook is timed)
    and serve /metrics; ``state`` is the scrape-time collector of the node's state."""
    app.extensions["qkms.metrics"] = metrics
    if state is not None:
        app.extensions["qkms.state_collector"] = state
    app.before_request(_start_timer)
    app.after_request(_count_response)
    app.register_blueprint(bp)
