"""qkms.failure_log: a repeating failure is logged once, counted, and its end noted;
the text of an unexpected exception (which may quote key material) is never logged."""

from __future__ import annotations

import logging

import pytest

from kms.errors import Unavailable
from qkms.failure_log import FailureLog, describe_failure

SECRET_HEX = "5f4dcc3b5aa765d61d8327deb882cf99"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.fixture
def logger(caplog):
    caplog.set_level(logging.INFO, logger="test.failures")
    return logging.getLogger("test.failures")


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.failures"]


def test_describe_names_type_and_place_but_not_the_text():
    text = describe_failure(raised(RuntimeError(f"block {SECRET_HEX} is odd")))
    assert text.startswith("RuntimeError at test_failure_log.py:") and "in raised" in text
    assert SECRET_HEX not in text


def test_describe_keeps_a_domain_errors_client_safe_message():
    assert describe_failure(Unavailable("peer B did not accept the request")) == \
        "Unavailable: peer B did not accept the request"


def test_identical_failures_are_logged_once_then_counted(logger, caplog):
    clock = Clock()
    failures = FailureLog(logger, "step", summary_interval_s=60, clock=clock)
    for _ in range(100):  # five a second for 20 s
        failures.failed(Unavailable("redis down"))
        clock.now += 0.2
    assert messages(caplog) == ["step failed: Unavailable: redis down"]
    clock.now += 60
    failures.failed(Unavailable("redis down"))
    assert messages(caplog)[1:] == ["step failed 100 more time(s) in 80 s: Unavailable: redis down"]


def test_a_different_failure_and_the_recovery_are_logged(logger, caplog):
    failures = FailureLog(logger, "step", clock=Clock())
    failures.failed(Unavailable("a"))
    failures.failed(Unavailable("a"))
    failures.failed(raised(KeyError(SECRET_HEX)))
    failures.succeeded()
    failures.succeeded()
    lines = messages(caplog)
    assert lines[0] == "step failed: Unavailable: a"
    assert lines[1] == "step failed 1 more time(s) in 0 s: Unavailable: a"
    assert lines[2].startswith("step failed: KeyError at test_failure_log.py:")
    assert lines[3] == "step works again after 3 failed attempt(s)"
    assert len(lines) == 4
    assert SECRET_HEX not in caplog.text
