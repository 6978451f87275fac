"""Waiting in tests: on a condition, with a generous deadline, never on a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

POLL_INTERVAL_S = 0.05


def wait_until(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy and return that; fail the
    test, naming ``what`` was awaited, if it has not after ``timeout_s``.

    Deadlines are generous (several times what a quiet machine needs): only a condition
    that never comes true, not a slow machine, should fail a test."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout_s:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)
