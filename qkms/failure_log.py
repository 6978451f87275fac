"""Logging a failure that repeats: one line when it starts, a count now and then, one when it ends.

A loop that retries every fraction of a second (the link manager's steps) would
otherwise write the same line, or traceback, several times a second for as long as,
say, Redis is down.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from kms.errors import QkmsError

SUMMARY_INTERVAL_S = 60.0


def describe_failure(exc: BaseException) -> str:
    """One line naming a failure without the data it carried: a QkmsError's message (safe
    for clients by contract); for anything else its type and where it was raised, because
    its text may quote whatever the failing code held (key material included)."""
    if isinstance(exc, QkmsError):
        return f"{type(exc).__name__}: {exc.message}"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} in {last.name}"


class FailureLog:
    """Reports the failures of a repeated ``activity`` on ``logger``, rate-limited.

    The first failure is logged at once, as is any failure that differs from the one
    before; identical repeats are counted and summed up every ``summary_interval_s``;
    the first success after failures is logged once."""

    def __init__(self, logger: logging.Logger, activity: str, summary_interval_s: float = SUMMARY_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self._log = logger
        self._activity = activity
        self._interval_s = summary_interval_s
        self._clock = clock
        self._current: str | None = None
        self._total = 0
        self._unreported = 0
        self._reported_at = 0.0

    def failed(self, exc: BaseException) -> None:
        """Note one failure."""
        description = describe_failure(exc)
        now = self._clock()
        if description != self._current:
            self._report_repeats(now)
            self._log.warning("%s failed: %s", self._activity, description)
            self._current, self._reported_at = description, now
        else:
            self._unreported += 1
            if now - self._reported_at >= self._interval_s:
                self._report_repeats(now)
        self._total += 1

    def succeeded(self) -> None:
        """Note a success: ends a run of failures."""
        if self._current is None:
            return
        self._log.info("%s works again after %d failed attempt(s)", self._activity, self._total)
        self._current, self._total, self._unreported = None, 0, 0

    def _report_repeats(self, now: float) -> None:
        if self._unreported:
            self._log.warning("%s failed %d more time(s) in %.0f s: %s", self._activity, self._unreported,
                              now - self._reported_at, self._current)
        self._unreported, self._reported_at = 0, now
