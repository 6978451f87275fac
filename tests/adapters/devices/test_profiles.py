"""Vendor profiles: a plain map of frozen settings, each value sourced or left to a setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.devices import profiles
from adapters.devices.settings import MODELS

SOURCE = Path(profiles.__file__).read_text()


def test_the_issue_s_four_profiles_exist_with_their_protocols() -> None:
    assert {name: p.protocol for name, p in profiles.PROFILES.items()} == {
        "idq-cerberis-xgr": "etsi014", "toshiba": "etsi014", "etsi014-generic": "etsi014",
        "etsi004-push": "etsi004"}


def test_profiles_are_frozen() -> None:
    with pytest.raises(TypeError):
        profiles.PROFILES["new"] = profiles.PROFILES["toshiba"]
    with pytest.raises(TypeError):
        profiles.PROFILES["toshiba"].settings["key_size_bits"] = 128


def test_the_cerberis_profile_holds_what_public_client_code_shows() -> None:
    idq = profiles.profile("idq-cerberis-xgr").settings
    assert idq == {"key_size_bits": 256, "keys_per_request": 1, "enc_keys_method": "GET", "dec_keys_method": "POST"}


def test_the_push_profile_holds_the_ait_qos_examples() -> None:
    assert profiles.profile("etsi004-push").settings == {"key_chunk_size_bytes": 32, "ttl_s": 600}


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_every_profile_value_is_a_setting_of_its_protocol(name: str) -> None:
    profile = profiles.profile(name)
    assert set(profile.settings) <= set(MODELS[profile.protocol].model_fields)


def test_every_profile_value_says_where_it_comes_from() -> None:
    """Each value line carries a citation ([QURSA], [ISSUE9], [AIT004], the ETSI text) or
    is marked a setting, on its line or in the comment just above it."""
    lines = SOURCE.splitlines()
    for number, line in enumerate(lines):
        if re.match(r'\s+"\w+": ', line) and "MappingProxyType" not in line:
            context = " ".join(lines[max(0, number - 3): number + 1])
            assert re.search(r"\[(QURSA|ISSUE9|AIT004)\]|ETSI GS QKD 014|[Ss]etting, not sourced", context), line


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="idq-cerberis-xgr"):
        profiles.profile("acme-qkd")
