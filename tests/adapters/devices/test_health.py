"""The device-health state machine and its circuit breaker, on a clock the test steps."""

from __future__ import annotations

import pytest

from adapters.devices.errors import DeviceFault
from adapters.devices.health import BreakerPolicy, DeviceHealth
from tests.support.device_harness import SteppedClock

POLICY = BreakerPolicy(breaker_failures=3, breaker_cooldown_s=20, backoff_initial_s=0.5, backoff_max_s=4,
                       window_s=10, stall_after_s=60)
UNAVAILABLE = DeviceFault("unavailable", "the device answered 503 to enc_keys: busy")


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def health(clock: SteppedClock) -> DeviceHealth:
    return DeviceHealth(POLICY, clock)


def test_nothing_delivered_yet_is_down(health: DeviceHealth) -> None:
    assert health.report().state == "down" and "nothing delivered yet" in health.report().reason


def test_a_delivery_makes_it_up(health: DeviceHealth) -> None:
    health.succeeded()
    assert health.report("3 blocks").state == "up" and health.report("3 blocks").reason == "3 blocks"


def test_failures_back_off_exponentially_up_to_the_cap(health: DeviceHealth, clock: SteppedClock) -> None:
    health.succeeded()
    assert health.failed(UNAVAILABLE) == 0.5
    assert health.wait_s() == 0.5 and health.report().state == "degraded"
    assert "503" in health.report().reason and "1 consecutive failure" in health.report().reason
    clock.advance(0.5)
    assert health.wait_s() == 0 and health.failed(UNAVAILABLE) == 1.0


def test_retry_after_is_honoured_up_to_the_cap(health: DeviceHealth) -> None:
    assert health.failed(DeviceFault("unavailable", "busy", retry_after_s=2)) == 2
    assert health.failed(DeviceFault("unavailable", "busy", retry_after_s=60)) == POLICY.backoff_max_s


def test_throttling_pauses_and_degrades_but_never_opens_the_breaker(health: DeviceHealth, clock) -> None:
    health.succeeded()
    for _ in range(10):
        assert health.failed(DeviceFault("throttled", "the device is throttling", retry_after_s=1)) == 1
        assert health.wait_s() == 1
        clock.advance(1)
    report = health.report()
    assert health.breaker == "closed" and report.state == "degraded" and "throttling" in report.reason


def test_the_breaker_opens_after_consecutive_failures_and_closes_after_a_success(health, clock) -> None:
    health.succeeded()
    for _ in range(POLICY.breaker_failures):
        delay = health.failed(UNAVAILABLE)
        clock.advance(delay)
    assert health.breaker == "half-open"  # the cooldown has just passed
    report = health.report()
    assert report.state == "degraded" and "probing" in report.reason
    assert health.failed(UNAVAILABLE) == POLICY.breaker_cooldown_s  # the probe failed: open again
    assert health.breaker == "open" and health.report().state == "down"
    assert "circuit open after 4 consecutive failures" in health.report().reason
    assert health.wait_s() == POLICY.breaker_cooldown_s
    clock.advance(POLICY.breaker_cooldown_s)
    assert health.wait_s() == 0 and health.breaker == "half-open"
    health.succeeded()
    assert health.breaker == "closed"
    clock.advance(POLICY.window_s + 1)
    assert health.report().state == "up" and health.report().metrics["breaker_opened"] == 2


def test_a_noted_problem_degrades_for_the_window_only(health: DeviceHealth, clock: SteppedClock) -> None:
    health.succeeded()
    health.noted("slow", "the device took 2.5 s to answer enc_keys")
    assert health.report().state == "degraded" and "2.5 s" in health.report().reason
    assert health.breaker == "closed" and health.wait_s() == 0
    clock.advance(POLICY.window_s + 1)
    health.succeeded()
    assert health.report().state == "up"


def test_a_severe_fault_is_down_at_once(health: DeviceHealth) -> None:
    health.succeeded()
    health.failed(DeviceFault("status_4", "no QKD connection available", severe=True))
    assert health.report().state == "down"


def test_a_stall_degrades(health: DeviceHealth, clock: SteppedClock) -> None:
    health.succeeded()
    clock.advance(POLICY.stall_after_s + 1)
    assert health.report().state == "degraded" and "nothing delivered for 61 s" in health.report().reason


def test_a_probe_closes_the_breaker_without_counting_as_a_delivery(health, clock) -> None:
    health.failed(UNAVAILABLE)
    health.succeeded(delivered=False)
    assert health.breaker == "closed" and health.wait_s() == 0
    clock.advance(POLICY.window_s + 1)
    assert health.report().state == "down" and "nothing delivered yet" in health.report().reason


def test_metrics_count_faults_by_kind(health: DeviceHealth) -> None:
    health.failed(UNAVAILABLE)
    health.failed(DeviceFault("timeout", "slow"))
    metrics = health.report().metrics
    assert metrics["faults_unavailable"] == 1 and metrics["faults_timeout"] == 1 and metrics["failures"] == 2


def test_a_drained_device_is_alive_and_never_opens_the_breaker(health: DeviceHealth, clock: SteppedClock) -> None:
    health.succeeded()
    for _ in range(3 * POLICY.breaker_failures):
        health.drained(UNAVAILABLE.message)
        assert health.breaker == "closed" and health.wait_s() == 0
    report = health.report()
    assert report.state == "up" and report.metrics["failures"] == 0 and report.metrics["faults_drained"] == 9
    clock.advance(POLICY.stall_after_s + 1)
    report = health.report()
    assert report.state == "degraded" and "nothing delivered for 61 s; the device has no keys" in report.reason
    health.succeeded()
    assert "no keys" not in health.report().reason


def test_a_drain_closes_a_half_open_breaker(health: DeviceHealth, clock: SteppedClock) -> None:
    for _ in range(POLICY.breaker_failures):
        health.failed(UNAVAILABLE)
    clock.advance(POLICY.breaker_cooldown_s)
    assert health.breaker == "half-open"
    health.drained(UNAVAILABLE.message)
    report = health.report()
    assert health.breaker == "closed" and health.wait_s() == 0 and "circuit" not in report.reason
    assert report.state == "down" and "nothing delivered yet" in report.reason
