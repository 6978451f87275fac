"""What an operator watches: samples of every link half over time, and alarms.

The link manager observes every link half it publishes (its own, and its peers' as
polled) about once a second; each observation becomes a :class:`LinkSample` in a
short history, and a change worth an operator's attention (a QBER jump, a source
going degraded or down, and its recovery) becomes an :class:`Alarm`. The dashboard
reads both. Samples and alarms carry link ids, states, rates and reasons: never key
material, nor anything derived from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from kms.link_board import LinkHalf

#: Samples kept per link half (about ten minutes at one a second) and alarms per node.
SAMPLES_KEPT = 600
ALARMS_KEPT = 200
#: A QBER rise of this much (absolute) between two observations raises an alarm.
QBER_JUMP = 0.03
#: A QBER at or above this is an alarm of its own (BB84's abort region starts at ~11 %).
QBER_CRITICAL = 0.11
STATE_RANK = {"down": 0, "degraded": 1, "up": 2}


@dataclass(frozen=True)
class LinkSample:
    """One observation of one link half: its state, QBER, secret key rate and pool level."""

    link_id: str
    owner: str
    at: float
    state: str
    qber: float | None
    secret_rate_bps: float | None
    available_bits: int

    @classmethod
    def of(cls, half: LinkHalf) -> "LinkSample":
        return cls(half.link_id, half.owner, half.observed_at, half.state, _metric(half, "qber"),
                   _metric(half, "secret_rate_bps"), half.available_bits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Alarm:
    """A change of a link half an operator should see. ``severity``: ``critical``,
    ``warning`` or ``cleared``; ``kind``: ``qber`` or ``state``."""

    at: float
    link_id: str
    owner: str
    severity: str
    kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _metric(half: LinkHalf, name: str) -> float | None:
    value = half.metrics.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def alarms_between(previous: LinkHalf | None, current: LinkHalf, alarmed: bool = False) -> list[Alarm]:
    """The alarms that the change from ``previous`` to ``current`` (one half) raises;
    ``alarmed``: whether the half's last alarm is not cleared yet.

    Only changes alarm: the first observation of a half raises none, nor does a half
    that stays as it was; coming back up clears only a raised alarm (a node starting
    sees its links come up from "no frame completed yet")."""
    if previous is None:
        return []
    alarms = []
    where = (current.observed_at, current.link_id, current.owner)
    old_qber, new_qber = _metric(previous, "qber"), _metric(current, "qber")
    if old_qber is not None and new_qber is not None and new_qber - old_qber >= QBER_JUMP:
        severity = "critical" if new_qber >= QBER_CRITICAL else "warning"
        alarms.append(Alarm(*where, severity, "qber", f"QBER {old_qber:.1%} -> {new_qber:.1%}: "
                            + (current.reason or "possible eavesdropper")))
    old_rank, new_rank = STATE_RANK.get(previous.state, 0), STATE_RANK.get(current.state, 0)
    if new_rank < old_rank:
        severity = "critical" if current.state == "down" else "warning"
        alarms.append(Alarm(*where, severity, "state", f"{previous.state} -> {current.state}: {current.reason}"))
    elif new_rank > old_rank and current.state == "up" and alarmed:
        alarms.append(Alarm(*where, "cleared", "state", f"{previous.state} -> up: {current.reason}"))
    return alarms


class TelemetryStore(ABC):
    """Recent samples of every link half, recent alarms, and each simulated link's
    rate-versus-distance curve, for one node (contract suite:
    tests/kms/test_telemetry_contract.py). Every method raises StoreError if the
    backend fails."""

    @abstractmethod
    def record(self, samples: list[LinkSample], alarms: list[Alarm]) -> None:
        """Append samples (each to its half's history, keeping the newest SAMPLES_KEPT)
        and alarms (keeping the newest ALARMS_KEPT)."""

    @abstractmethod
    def samples(self, since: float = 0.0) -> dict[tuple[str, str], list[LinkSample]]:
        """Every half's samples taken after ``since``, oldest first, by (link_id, owner)."""

    @abstractmethod
    def alarms(self, since: float = 0.0) -> list[Alarm]:
        """Alarms raised after ``since``, oldest first."""

    @abstractmethod
    def put_rate_curve(self, link_id: str, curve: dict[str, Any]) -> None:
        """Store a link's rate-versus-distance curve (a JSON-able object), replacing any."""

    @abstractmethod
    def rate_curve(self, link_id: str) -> dict[str, Any] | None:
        """The link's curve, or None if none was stored."""
