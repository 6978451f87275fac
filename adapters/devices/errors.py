"""What can go wrong with a QKD device, as one error carrying a health reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from kms.errors import QkmsError


class DeviceFault(QkmsError):
    """A device (or the other end of its link) did something the adapter will not use.

    ``kind`` is a short stable name (``unreachable``, ``timeout``, ``unavailable``,
    ``throttled``, ``malformed``, ``wrong_length``, ``unknown_key_id``, ``mismatch``,
    ``repeated_key``, ...; docs/devices.md lists them); ``message`` is the health
    reason an operator reads. ``retry_after_s`` is how long the device asked to be
    left alone, if it said; ``severe`` marks a fault that makes the link end ``down``
    at once (an ETSI 004 "no QKD connection"), not only after the breaker opens. Never
    carries key material.
    """

    message = "QKD device fault"

    def __init__(self, kind: str, reason: str, retry_after_s: float | None = None, severe: bool = False):
        super().__init__(reason)
        self.kind = kind
        self.retry_after_s = retry_after_s
        self.severe = severe


@contextmanager
def reaching_device(url: str, timeout_s: float, operation: str) -> Iterator[None]:
    """Turns httpx's timeouts and transport errors inside into DeviceFaults naming the
    operation (``timeout``, ``unreachable``)."""
    try:
        yield
    except httpx.TimeoutException:
        raise DeviceFault("timeout", f"the device did not answer {operation} within {timeout_s:g} s") from None
    except httpx.TransportError as exc:
        reason = "".join(ch if ch.isprintable() else " " for ch in str(exc) or type(exc).__name__)[:160]
        raise DeviceFault("unreachable", f"the device at {url} is unreachable ({operation}: {reason})") from None
