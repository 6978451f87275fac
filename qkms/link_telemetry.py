"""The link manager's part in monitoring: it records the link halves it sees.

Every link half on the link board (its own as the link manager publishes them about
once a second, its peers' as they were pushed, when the link manager next reads the
board) is also kept as a sample of that half's history and
checked for alarms (:mod:`kms.telemetry`); the dashboard reads both. On the way it
counts alarms and times a Redis PING for Prometheus (etsi_api/metrics.py serves
them). A failure here is logged and never stops the link manager's own work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kms.errors import QkmsError
from kms.link_board import LinkBoard, LinkHalf
from kms.telemetry import Alarm, LinkSample, TelemetryStore, alarms_between
from qkms.failure_log import FailureLog

log = logging.getLogger("qkms.telemetry")

PING_INTERVAL_S = 1.0


class LinkdMetrics:
    """The link manager's Prometheus metrics (multiprocess files when the node's serve
    process set PROMETHEUS_MULTIPROC_DIR; see etsi_api.metrics)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        from etsi_api.metrics import REDIS_PING_BUCKETS_S

        registry = CollectorRegistry()
        self.alarms = Counter("qkms_link_alarms", "Alarms raised on link halves", ["link", "owner", "kind"],
                              registry=registry)
        self.redis_ping = Histogram("qkms_redis_ping_seconds", "Round trip of a Redis PING", ["process"],
                                    buckets=REDIS_PING_BUCKETS_S, registry=registry)


class LinkRecorder:
    """Keeps samples and alarms of every observed half in ``telemetry``."""

    def __init__(self, telemetry: TelemetryStore, ping: Callable[[], bool], metrics: LinkdMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._telemetry = telemetry
        self._ping = ping
        self._metrics = metrics
        self._clock = clock
        self._last: dict[tuple[str, str], LinkHalf] = {}
        self._alarmed: set[tuple[str, str]] = set()  # halves whose last alarm is not cleared
        self._pinged_at = float("-inf")
        self._failures = FailureLog(log, "recording link telemetry")

    def observe(self, halves: list[LinkHalf]) -> list[Alarm]:
        """Record the halves that are new observations; returns the alarms they raised."""
        samples, alarms = [], []
        for half in halves:
            key = (half.link_id, half.owner)
            previous = self._last.get(key)
            if previous is not None and previous.version >= half.version:
                continue  # a peer's half polled again before it changed
            samples.append(LinkSample.of(half))
            raised = alarms_between(previous, half, key in self._alarmed)
            if raised:
                (self._alarmed.discard if raised[-1].severity == "cleared" else self._alarmed.add)(key)
            alarms.extend(raised)
            self._last[key] = half
        try:
            self._telemetry.record(samples, alarms)
            self._time_ping()
        except QkmsError as exc:
            self._failures.failed(exc)
        else:
            self._failures.succeeded()
        for alarm in alarms:
            log.warning("alarm (%s) on link %s at %s: %s", alarm.severity, alarm.link_id, alarm.owner, alarm.message)
            if self._metrics is not None:
                self._metrics.alarms.labels(alarm.link_id, alarm.owner, alarm.kind).inc()
        return alarms

    def _time_ping(self) -> None:
        now = self._clock()
        if self._metrics is None or now - self._pinged_at < PING_INTERVAL_S:
            return
        self._pinged_at = now
        started = time.perf_counter()
        if self._ping():
            self._metrics.redis_ping.labels("link_manager").observe(time.perf_counter() - started)


class ObservedBoard(LinkBoard):
    """A link board whose every publication, and every half a read finds that is newer
    than the recorder last saw (peers push theirs into the board from the web workers),
    the recorder sees too."""

    def __init__(self, board: LinkBoard, recorder: LinkRecorder):
        self._board = board
        self._recorder = recorder

    def publish(self, halves: list[LinkHalf]) -> None:
        self._board.publish(halves)
        self._recorder.observe(halves)

    def read(self) -> dict[tuple[str, str], LinkHalf]:
        halves = self._board.read()
        self._recorder.observe(list(halves.values()))
        return halves
