"""Per-SAE admission: a request rate and a number of requests in progress per SAE,
counted across every worker and replica of a node (the counters live in its store),
checked before any key is touched.

ETSI GS QKD 014 defines no 429: a request over either limit gets 503 with a message
that names the limit (``RateLimited``, ``TooManyRequestsInProgress``), the status the
standard gives to "cannot be served now"; see docs/security.md.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass

from kms.config import NodeConfig
from kms.errors import RateLimited, TooManyRequestsInProgress

#: How much longer than a request may last a forgotten ticket still counts (a worker
#: killed mid-request never releases its ticket; the lease frees it).
LEASE_MARGIN_S = 5.0


@dataclass(frozen=True)
class Verdict:
    """The counters' answer: ``ok``, ``rate`` (no token; ``retry_after_s`` until one) or
    ``busy`` (as many requests in progress as allowed)."""

    outcome: str
    retry_after_s: float = 0.0


class AdmissionCounters(ABC):
    """Token buckets and in-progress sets per account, shared by every process of a node."""

    @abstractmethod
    def admit(self, account: str, ticket: str, rate_per_s: float | None, burst: int,
              max_in_progress: int | None, lease_s: float) -> Verdict:
        """Atomically: unless ``max_in_progress`` tickets of ``account`` are in progress
        (tickets older than their ``lease_s`` do not count), take one token from its
        bucket (``burst`` tokens when new or full, refilled at ``rate_per_s``) and enter
        ``ticket``. ``busy`` and ``rate`` change nothing; a None limit is not checked
        (and nothing is stored for it)."""

    @abstractmethod
    def release(self, account: str, ticket: str) -> None:
        """The request of ``ticket`` has ended (a ticket not held is ignored)."""


@dataclass(frozen=True)
class AdmissionLimits:
    """Per-SAE limits (None: not limited) and how long a ticket may be held."""

    rate_per_s: float | None = None
    burst: int = 1
    max_in_progress: int | None = None
    lease_s: float = 60.0

    @classmethod
    def for_node(cls, config: NodeConfig) -> "AdmissionLimits":
        limits = config.limits
        return cls(limits.requests_per_s_per_sae, limits.request_burst_per_sae,
                   limits.concurrent_requests_per_sae, config.server.request_timeout_s + LEASE_MARGIN_S)

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s is None and self.max_in_progress is None


@dataclass(frozen=True)
class Ticket:
    account: str
    ticket: str


class Admission:
    """Admits an SAE's request or refuses it with 503 (an Unavailable)."""

    def __init__(self, counters: AdmissionCounters, limits: AdmissionLimits):
        self._counters = counters
        self._limits = limits

    def enter(self, sae_id: str) -> Ticket | None:
        """A ticket to :meth:`leave` when the request ends (None if nothing is limited);
        RateLimited or TooManyRequestsInProgress if the SAE is over a limit."""
        limits = self._limits
        if limits.unlimited:
            return None
        ticket = Ticket(f"sae:{sae_id}", uuid.uuid4().hex)
        verdict = self._counters.admit(ticket.account, ticket.ticket, limits.rate_per_s, limits.burst,
                                       limits.max_in_progress, limits.lease_s)
        if verdict.outcome == "rate":
            raise RateLimited(retry_after_s=verdict.retry_after_s)
        if verdict.outcome == "busy":
            raise TooManyRequestsInProgress()
        return ticket

    def leave(self, ticket: Ticket | None) -> None:
        if ticket is not None and self._limits.max_in_progress is not None:
            self._counters.release(ticket.account, ticket.ticket)
