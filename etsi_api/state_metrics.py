"""The node's state as Prometheus metrics, read from its storage at every scrape.

Pool levels and key totals come from the pool store itself (exact, and kept across
restarts): bits generated into a pool half = its unused bits + every bit carved,
taken or discarded from it. QBER, secret key rate, source health and aborted frames
come from the link board (this node's own halves as its link manager published them
about a second ago, its peers' as they last pushed them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kms.config import NodeConfig
from kms.errors import StoreError
from kms.link_board import LinkBoard, LinkHalf
from kms.link_manager_state import LinkManagerStatus
from kms.pools import PoolStore

#: Source health as a number: graphs and alert rules compare it (stale reports count as down).
HEALTH_VALUE = {"down": 0, "degraded": 1, "up": 2}


class NodeStateCollector(Collector):
    """Collects the state of a node when scraped, on its configuration then (``config()``:
    admin changes may add links while the node runs)."""

    def __init__(self, config: Callable[[], NodeConfig], board: LinkBoard, pools: PoolStore,
                 link_manager: Callable[[], LinkManagerStatus], ping: Callable[[], bool],
                 observe_ping: Callable[[float], None] = lambda seconds: None):
        self._config = config
        self._board = board
        self._pools = pools
        self._link_manager = link_manager
        self._ping = ping
        self._observe_ping = observe_ping

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the names are fixed below

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        store_up = self._ping()
        elapsed = time.perf_counter() - started
        up = GaugeMetricFamily("qkms_store_up", "1 if the node's Redis answers a PING")
        up.add_metric([], 1.0 if store_up else 0.0)
        yield up
        if not store_up:
            return
        self._observe_ping(elapsed)
        try:
            metrics = [*self._pool_metrics(), *self._board_metrics(), *self._link_manager_metrics()]
        except StoreError:
            return
        yield from metrics

    def _pool_metrics(self) -> list[Metric]:
        level = GaugeMetricFamily("qkms_link_pool_bits", "Unused key bits in a pool half held by this node",
                                  labels=["link", "owner"])
        generated = CounterMetricFamily("qkms_link_generated_bits", "Key bits a source put into a pool half",
                                        labels=["link", "owner"])
        consumed = CounterMetricFamily("qkms_link_consumed_bits", "Key bits that left a pool half: carved "
                                       "(sent by the owner), taken (received as the peer), discarded (pool sync)",
                                       labels=["link", "owner", "how"])
        for link in self._config().local_links():
            for pool in map(link.pool_id, link.roles):
                for owner in link.nodes:
                    available = self._pools.available_bits(pool, owner)
                    usage = self._pools.usage_bits(pool, owner)
                    level.add_metric([pool, owner], available)
                    generated.add_metric([pool, owner], available + sum(usage.values()))
                    for how, bits in sorted(usage.items()):
                        consumed.add_metric([pool, owner, how.removesuffix("_bits")], bits)
        return [level, generated, consumed]

    def _board_metrics(self) -> list[Metric]:
        labels = ["link", "owner"]
        qber = GaugeMetricFamily("qkms_link_qber", "Quantum bit error rate of the source's last frame", labels=labels)
        rate = GaugeMetricFamily("qkms_link_secret_rate_bps", "Secret key rate the source reports (bit/s)",
                                 labels=labels)
        health = GaugeMetricFamily("qkms_link_source_health", "Source health: 2 up, 1 degraded, 0 down or not "
                                   "reported recently", labels=[*labels, "state"])
        aborted = CounterMetricFamily("qkms_link_frames_aborted", "Frames that yielded no key (QBER above the "
                                      "abort threshold, failed verification), since the source started",
                                      labels=labels)
        age = GaugeMetricFamily("qkms_link_report_age_seconds", "Age of the last report of a link half",
                                labels=labels)
        now = time.time()
        for (link_id, owner), half in sorted(self._board.read().items()):
            state = half.state if half.fresh(now) else "down"
            health.add_metric([link_id, owner, state], HEALTH_VALUE.get(state, 0))
            age.add_metric([link_id, owner], max(0.0, now - half.observed_at))
            for family, name in ((qber, "qber"), (rate, "secret_rate_bps"), (aborted, "frames_aborted")):
                value = _number(half, name)
                if value is not None:
                    family.add_metric([link_id, owner], value)
        return [qber, rate, health, aborted, age]

    def _link_manager_metrics(self) -> list[Metric]:
        status = self._link_manager()
        up = GaugeMetricFamily("qkms_link_manager_up", "1 if the link manager is healthy (or the node has no links)",
                               labels=["state"])
        up.add_metric([status.state], 1.0 if status.healthy else 0.0)
        restarts = CounterMetricFamily("qkms_link_manager_restarts", "Restarts of the link manager since the "
                                       "node started")
        restarts.add_metric([], status.restarts or 0)
        return [up, restarts]


def _number(half: LinkHalf, name: str) -> float | None:
    value = half.metrics.get(name)
    return float(value) if isinstance(value, (int, float)) else None
