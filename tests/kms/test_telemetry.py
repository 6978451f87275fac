"""Alarms from changes of a link half (kms.telemetry): a QBER jump, a worse state, a
recovery; nothing from a first observation or from a half that stays as it was."""

from __future__ import annotations

import pytest

from kms.link_board import LinkHalf
from kms.telemetry import LinkSample, alarms_between

CALM = LinkHalf("A-B", "A", 8192, "up", "frame 7: QBER 2.1%, 900 secret bits", {"qber": 0.021,
                "secret_rate_bps": 225.0}, 100.0)
EAVESDROPPED = LinkHalf("A-B", "A", 8192, "degraded",
                        "frame 8: QBER 25.7% above abort threshold 11.0%: possible eavesdropper",
                        {"qber": 0.257, "secret_rate_bps": 0.0}, 104.0)


def test_a_first_observation_raises_no_alarm() -> None:
    assert alarms_between(None, EAVESDROPPED) == []


def test_a_half_that_stays_calm_raises_none() -> None:
    later = LinkHalf(**{**CALM.__dict__, "observed_at": 101.0, "metrics": {"qber": 0.025}})
    assert alarms_between(CALM, later) == []


def test_an_eavesdropper_raises_a_critical_qber_alarm_and_a_state_alarm() -> None:
    qber, state = alarms_between(CALM, EAVESDROPPED)
    assert (qber.kind, qber.severity, qber.link_id, qber.owner, qber.at) == ("qber", "critical", "A-B", "A", 104.0)
    assert qber.message == "QBER 2.1% -> 25.7%: " + EAVESDROPPED.reason
    assert (state.kind, state.severity) == ("state", "warning")
    assert state.message.startswith("up -> degraded: frame 8: QBER 25.7%")


@pytest.mark.parametrize("new_qber, severity", [(0.06, "warning"), (0.11, "critical")])
def test_a_smaller_jump_is_a_warning_until_the_abort_region(new_qber: float, severity: str) -> None:
    jumped = LinkHalf("A-B", "A", 0, "up", "", {"qber": new_qber}, 101.0)
    (alarm,) = alarms_between(CALM, jumped)
    assert alarm.severity == severity


def test_down_is_critical_and_coming_back_up_clears() -> None:
    down = LinkHalf("A-B", "A", 0, "down", "3 consecutive frames yielded no key", {}, 110.0)
    (alarm,) = alarms_between(EAVESDROPPED, down)
    assert (alarm.severity, alarm.kind) == ("critical", "state")
    assert alarms_between(down, CALM) == []  # nothing was raised: a link coming up at start
    (cleared,) = alarms_between(down, CALM, alarmed=True)
    assert (cleared.severity, cleared.message) == ("cleared", "down -> up: frame 7: QBER 2.1%, 900 secret bits")


def test_a_sample_carries_state_qber_rate_and_level() -> None:
    assert LinkSample.of(CALM) == LinkSample("A-B", "A", 100.0, "up", 0.021, 225.0, 8192)
    assert LinkSample.of(LinkHalf("A-B", "B", 0, "down", "no data")).qber is None
