"""What the node's monitoring interfaces (/metrics, /dashboard/) read: handed to
``create_app`` by whoever assembled the node's storage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kms.link_board import LinkBoard
from kms.pools import PoolStore
from kms.telemetry import TelemetryStore


@dataclass(frozen=True)
class Monitoring:
    """The node's link board and pools (state metrics, topology), its telemetry (the
    dashboard's history, alarms and rate curves) and the directory where every process
    of the node keeps its Prometheus metrics (None: this process only)."""

    board: LinkBoard
    pools: PoolStore
    telemetry: TelemetryStore
    multiprocess_dir: Path | None = None
