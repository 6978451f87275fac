"""Whether a node's link manager is running, as every process of the node can tell.

Two records describe it, kept in the node's storage (:class:`LinkManagerRecords`;
implementations in ``kms/storage``):

- the **heartbeat**, written by the link manager (``qkms linkd``) about once a second
  and gone when it is overdue (:func:`heartbeat_ttl_s`);
- the **supervisor record**, written by ``qkms serve`` whenever it starts the link
  manager or sees it exit: restarts, last exit code, backoff before the next start.

:func:`derive_status` turns the two into the :class:`LinkManagerStatus` that
``/healthz``, the ETSI status extension and ``qkms links`` report.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from kms.config import NodeConfig

HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_MIN_TTL_S = 5.0

#: ``running``: beating; ``starting``: started, first heartbeat not yet due;
#: ``restarting``: exited, waiting out its backoff; ``stale``: its heartbeat is overdue
#: (hung, or gone without the supervisor noticing); ``stopped``: not running (the node
#: is shutting down, or nothing supervises it); ``absent``: the node has no links.
LinkManagerStateName = Literal["running", "starting", "restarting", "stale", "stopped", "absent"]
HEALTHY_STATES = frozenset({"running", "starting", "absent"})


def heartbeat_ttl_s(config: NodeConfig) -> float:
    """How long a heartbeat stays valid: a minimum plus the longest a healthy step of the
    link manager can take (one KM-channel call per peer and per own link, each bounded
    by ``km_timeout_s``), so slow peers do not make a working link manager look hung."""
    calls = len(config.peers) + len(config.local_links())
    return HEARTBEAT_MIN_TTL_S + calls * config.km_timeout_s


@dataclass(frozen=True)
class Heartbeat:
    """The link manager process ``pid`` was alive at unix time ``at``."""

    pid: int
    at: float


@dataclass(frozen=True)
class SupervisorRecord:
    """What the supervisor last did: ``state`` since unix time ``since``; ``restarts``
    counts unexpected exits; ``last_exit_code`` is negative for a signal."""

    state: Literal["running", "restarting", "stopped"]
    pid: int | None
    restarts: int
    since: float
    last_exit_code: int | None = None
    backoff_s: float | None = None


@dataclass(frozen=True)
class LinkManagerStatus:
    """The link manager as reported to operators (never any key material)."""

    state: LinkManagerStateName
    pid: int | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    backoff_s: float | None = None
    heartbeat_age_s: float | None = None

    @property
    def healthy(self) -> bool:
        """False when a node with links has no live link manager: its pools stop filling."""
        return self.state in HEALTHY_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "LinkManagerStatus":
        """Parse :meth:`to_dict` output; TypeError or ValueError if it is malformed."""
        if not isinstance(data, dict) or data.get("state") not in get_args(LinkManagerStateName):
            raise ValueError("not a link manager status")
        return cls(data["state"], _optional(data.get("pid"), int), int(data.get("restarts", 0)),
                   _optional(data.get("last_exit_code"), int), _optional(data.get("backoff_s"), float),
                   _optional(data.get("heartbeat_age_s"), float))


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


def derive_status(heartbeat: Heartbeat | None, record: SupervisorRecord | None, grace_s: float,
                  now: float) -> LinkManagerStatus:
    """The state of a node's link manager from its two records; ``grace_s`` is how long
    a newly started one may take to send its first heartbeat."""
    if record is None:  # a link manager nobody supervises (started by hand), or none
        if heartbeat is None:
            return LinkManagerStatus("stopped")
        return LinkManagerStatus("running", heartbeat.pid, heartbeat_age_s=max(0.0, now - heartbeat.at))
    known = {"pid": record.pid, "restarts": record.restarts, "last_exit_code": record.last_exit_code}
    if record.state != "running":
        return LinkManagerStatus(record.state, backoff_s=record.backoff_s, **known)
    if heartbeat is not None and heartbeat.pid == record.pid:
        return LinkManagerStatus("running", heartbeat_age_s=max(0.0, now - heartbeat.at), **known)
    return LinkManagerStatus("starting" if now - record.since <= grace_s else "stale", **known)


class LinkManagerRecords(ABC):
    """Where a node keeps its link manager's heartbeat and supervisor record (contract
    suite: tests/kms/test_link_manager_records_contract.py). Every method raises
    StoreError if the backend fails."""

    @abstractmethod
    def beat(self, heartbeat: Heartbeat, ttl_s: float) -> None:
        """Replace the heartbeat; it is gone ``ttl_s`` seconds later unless replaced."""

    @abstractmethod
    def record(self, record: SupervisorRecord) -> None:
        """Replace the supervisor record."""

    @abstractmethod
    def read(self) -> tuple[Heartbeat | None, SupervisorRecord | None]:
        """The current heartbeat and supervisor record (None for each one missing)."""


class LinkManagerState:
    """One node's link manager as its processes see it, over its records.

    ``heartbeat_ttl_s`` is None for a node without links, which runs no link manager."""

    def __init__(self, records: LinkManagerRecords, heartbeat_ttl_s: float | None):
        self._records = records
        self._ttl_s = heartbeat_ttl_s

    @classmethod
    def for_node(cls, records: LinkManagerRecords, config: NodeConfig) -> "LinkManagerState":
        return cls(records, heartbeat_ttl_s(config) if config.local_links() else None)

    def beat(self, pid: int) -> None:
        """Record that link manager ``pid`` is alive now."""
        if self._ttl_s is not None:
            self._records.beat(Heartbeat(pid, time.time()), self._ttl_s)

    def record(self, record: SupervisorRecord) -> None:
        """Record what the supervisor did."""
        self._records.record(record)

    def status(self) -> LinkManagerStatus:
        """The link manager's state now (``absent`` without links, without reading records)."""
        if self._ttl_s is None:
            return LinkManagerStatus("absent")
        heartbeat, record = self._records.read()
        return derive_status(heartbeat, record, self._ttl_s, time.time())
