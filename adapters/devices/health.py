"""The health of a device-fed link end: a circuit breaker over consecutive failures,
backoff between attempts, and a window of recent problems.

    closed --(breaker_failures consecutive failures)--> open --(cooldown)--> half-open
    half-open --(a success)--> closed;  half-open --(a failure)--> open

While closed, each failure delays the next attempt (exponential backoff from
``backoff_initial_s``, capped at ``backoff_max_s``; a device's Retry-After is
honoured up to that cap, and a throttling device, alive but asking for a pause, does
not count towards opening the breaker). A drained device, alive but out of keys for the
moment, is no failure either: it neither counts towards the breaker nor degrades health;
only a drain that outlasts ``stall_after_s`` shows, as a stall naming it. Reported health:

- ``down``: the breaker is open, the last attempt failed with a severe fault (the
  device says it has no QKD connection), or nothing was ever delivered;
- ``degraded``: half-open, failing (not yet open), a problem within ``window_s``
  (a slow answer, a block dropped by the equality check...), or no success for
  ``stall_after_s``;
- ``up`` otherwise.

The clock is injected (tests step it); the object is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.devices.errors import DeviceFault
from kms.sources import SourceHealth


@dataclass(frozen=True)
class BreakerPolicy:
    breaker_failures: int = 5
    breaker_cooldown_s: float = 15.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    window_s: float = 30.0
    stall_after_s: float = 60.0

    @classmethod
    def of(cls, settings) -> "BreakerPolicy":
        """The policy a device section configures (``adapters.devices.settings``)."""
        return cls(settings.breaker_failures, settings.breaker_cooldown_s, settings.backoff_initial_s,
                   settings.backoff_max_s, settings.health_window_s, settings.stall_after_s)


@dataclass
class _Problem:
    at: float
    kind: str
    reason: str
    severe: bool = False


@dataclass
class _Counts:
    successes: int = 0
    failures: int = 0
    breaker_opened: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class DeviceHealth:
    """Attempts, their outcomes, and the health they add up to."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic):
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._state = "closed"
        self._consecutive = 0
        self._next_attempt_at = clock()
        self._problem: _Problem | None = None
        self._last_success_at: float | None = None
        self._drained_reason: str | None = None
        self._started_at = clock()
        self._counts = _Counts()

    @property
    def breaker(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        with self._lock:
            self._refresh()
            return self._state

    def wait_s(self) -> float:
        """Seconds until the next attempt may go (0: now). An open breaker whose
        cooldown has passed becomes half-open: one attempt may go."""
        with self._lock:
            self._refresh()
            return max(0.0, self._next_attempt_at - self._clock())

    def _refresh(self) -> None:
        if self._state == "open" and self._clock() >= self._next_attempt_at:
            self._state = "half-open"

    def succeeded(self, delivered: bool = True) -> None:
        """An attempt went through: close the breaker, forget the failure streak.
        ``delivered`` False for an attempt that only showed the device alive (a probe)."""
        with self._lock:
            now = self._alive()
            if delivered:
                self._last_success_at = now
                self._drained_reason = None
                self._counts.successes += 1

    def drained(self, reason: str) -> None:
        """The device answered but had no keys to give (an ETSI 014 503 to enc_keys right
        after its status counted enough): it is alive, so the breaker closes as after a
        probe; ``reason`` is kept for the stall report should the drain last."""
        with self._lock:
            self._alive()
            self._drained_reason = reason
            self._count("drained")

    def _alive(self) -> float:
        now = self._clock()
        self._state = "closed"
        self._consecutive = 0
        self._next_attempt_at = now
        return now

    def failed(self, fault: DeviceFault) -> float:
        """An attempt failed; returns the seconds until the next one may go. A device that
        throttles (503 with Retry-After) is alive and asks for a pause: the pause is kept
        and health degraded, but it does not count towards opening the breaker."""
        with self._lock:
            now = self._clock()
            self._record(now, fault.kind, fault.message, fault.severe)
            if fault.kind.endswith("throttled") and fault.retry_after_s is not None:
                delay = self._backoff_s(fault.retry_after_s)
                self._next_attempt_at = max(self._next_attempt_at, now + delay)
                return delay
            self._consecutive += 1
            self._counts.failures += 1
            if self._state == "half-open" or self._consecutive >= self._policy.breaker_failures:
                if self._state != "open":
                    self._counts.breaker_opened += 1
                self._state = "open"
                delay = self._policy.breaker_cooldown_s
            else:
                delay = self._backoff_s(fault.retry_after_s)
            self._next_attempt_at = now + delay
            return delay

    def noted(self, kind: str, reason: str) -> None:
        """A problem that is not a failed attempt (a slow answer, a stale device key):
        health is degraded for ``window_s``, the breaker is untouched."""
        with self._lock:
            self._record(self._clock(), kind, reason)

    def _record(self, now: float, kind: str, reason: str, severe: bool = False) -> None:
        self._problem = _Problem(now, kind, reason, severe)
        self._count(kind)

    def _count(self, kind: str) -> None:
        self._counts.by_kind[kind] = self._counts.by_kind.get(kind, 0) + 1

    def _backoff_s(self, retry_after_s: float | None) -> float:
        cap = self._policy.backoff_max_s
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), cap)
        return min(cap, self._policy.backoff_initial_s * 2 ** (self._consecutive - 1))

    def report(self, summary: str = "", metrics: dict[str, float] | None = None) -> SourceHealth:
        """The health these outcomes add up to; ``summary`` describes a healthy end."""
        with self._lock:
            self._refresh()
            state, reason = self._assess(self._clock(), summary)
            counts = {"successes": self._counts.successes, "failures": self._counts.failures,
                      "consecutive_failures": self._consecutive, "breaker_opened": self._counts.breaker_opened,
                      "breaker_open": float(self._state == "open")}
            counts |= {f"faults_{kind}": n for kind, n in self._counts.by_kind.items()}
        return SourceHealth(state, reason, {**counts, **(metrics or {})})

    def _assess(self, now: float, summary: str) -> tuple[str, str]:
        problem = self._problem
        last = problem.reason if problem else "none"
        if self._state == "open":
            return "down", (f"circuit open after {self._consecutive} consecutive failures; last: {last}; "
                            f"next try in {max(0.0, self._next_attempt_at - now):.0f} s")
        if self._state == "half-open":
            return "degraded", f"probing the device again after {self._consecutive} failures; last: {last}"
        if self._consecutive:
            state = "down" if problem.severe else "degraded"
            return state, (f"{last} ({self._consecutive} consecutive failure(s); "
                           f"retrying in {max(0.0, self._next_attempt_at - now):.1f} s)")
        if problem and now - problem.at <= self._policy.window_s:
            return "degraded", f"{problem.reason} ({now - problem.at:.0f} s ago)"
        drain = f"; the device has no keys to give ({self._drained_reason})" if self._drained_reason else ""
        if self._last_success_at is None:
            return "down", "nothing delivered yet" + (f"; last: {last}" if problem else "") + drain
        idle = now - self._last_success_at
        if idle > self._policy.stall_after_s:
            return "degraded", f"nothing delivered for {idle:.0f} s" + drain
        return "up", summary or f"last delivery {idle:.0f} s ago"
