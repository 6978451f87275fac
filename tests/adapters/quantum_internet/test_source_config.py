"""Settings of the repeater-chain and satellite sources added with the satellite relay and
memory T1: errors name the setting."""

from __future__ import annotations

import math

import pytest

from adapters.quantum_internet.source_config import RepeaterChainSettings, SatelliteSettings, parse
from kms.errors import ConfigError


@pytest.mark.parametrize("settings_class, section, message", [
    (RepeaterChainSettings, {"memory_t1_s": 0.4}, "memory_t1_s: must be > 0 and >= memory_t2_s / 2"),
    (RepeaterChainSettings, {"memory_t1_s": 0}, "memory_t1_s: "),
    (SatelliteSettings, {"pass_interval_s": 60}, "pass_duration_s: a pass of 442.6"),
    (SatelliteSettings, {"pass_offset_s": 86_400}, "pass_offset_s: must be in [0, pass_interval_s = 86400)"),
    (SatelliteSettings, {"pass_offset_s": -1}, "pass_offset_s: "),
])
def test_a_bad_setting_is_named(settings_class, section, message):
    with pytest.raises(ConfigError) as raised:
        parse(settings_class, section, "test")
    assert raised.value.message.startswith(message)


def test_memory_t1_defaults_to_infinite_and_reaches_the_model():
    assert parse(RepeaterChainSettings, {}, "test")[1].memory_t1_s == math.inf
    assert parse(RepeaterChainSettings, {"memory_t1_s": 2.0}, "test")[1].memory_t1_s == 2.0
    assert parse(SatelliteSettings, {"pass_offset_s": 43_200}, "test")[1].schedule.offset_s == 43_200
