"""qkms.rate_limited_log: one line per key and interval, then a count of the dropped ones."""

from __future__ import annotations

import logging

import pytest

from qkms import rate_limited_log
from qkms.rate_limited_log import RateLimitedLog


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(rate_limited_log.time, "monotonic", lambda: now[0])
    return now


def messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_one_line_per_key_and_interval_then_the_dropped_count(clock, caplog):
    quiet = RateLimitedLog(logging.getLogger("test.quiet"), interval_s=60)
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            quiet.warning(("10.0.0.1", "failed"), "handshake from 10.0.0.1 failed")
        quiet.warning(("10.0.0.2", "failed"), "handshake from 10.0.0.2 failed")
        clock[0] += 59.9
        quiet.warning(("10.0.0.1", "failed"), "handshake from 10.0.0.1 failed")
        clock[0] += 0.1
        quiet.warning(("10.0.0.1", "failed"), "handshake from 10.0.0.1 failed")
    assert messages(caplog) == ["handshake from 10.0.0.1 failed", "handshake from 10.0.0.2 failed",
                                "handshake from 10.0.0.1 failed (50 more not logged)"]


def test_keys_seen_long_ago_are_forgotten_when_the_table_is_full(clock, monkeypatch, caplog):
    """The table of keys stays bounded: a full one drops keys whose interval is over
    (their dropped counts with them)."""
    monkeypatch.setattr(RateLimitedLog, "MAX_KEYS", 3)
    quiet = RateLimitedLog(logging.getLogger("test.quiet"), interval_s=60)
    with caplog.at_level(logging.WARNING):
        for address in ("a", "b", "c", "a", "b", "c"):
            quiet.warning((address,), address)
        clock[0] += 61
        quiet.warning(("d",), "d")
        quiet.warning(("a",), "a")
    assert messages(caplog) == ["a", "b", "c", "d", "a"]
