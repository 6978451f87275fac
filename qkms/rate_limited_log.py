"""Log lines that an attacker can trigger at will, written at a bounded rate."""

from __future__ import annotations

import logging
import math
import time


class RateLimitedLog:
    """Warnings of which at most one per key is written every ``interval_s``; the next
    line written for a key says how many were dropped since the last one."""

    MAX_KEYS = 4096

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0):
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[tuple, tuple[float, int]] = {}

    def warning(self, key: tuple, message: str) -> None:
        now = time.monotonic()
        written_at, dropped = self._last.get(key, (-math.inf, 0))
        if now - written_at < self._interval_s:
            self._last[key] = (written_at, dropped + 1)
            return
        if len(self._last) >= self.MAX_KEYS:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self._interval_s}
        self._last[key] = (now, 0)
        self._logger.warning("%s%s", message, f" ({dropped} more not logged)" if dropped else "")
