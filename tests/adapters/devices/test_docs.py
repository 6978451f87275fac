"""The device sources document themselves: every setting in docs/devices.md, and the
examples there and in config/example.yaml are valid sections."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from adapters.devices.settings import Etsi004Settings, Etsi014Settings, parse_settings
from kms.sources import SourceContext

REPO = Path(__file__).resolve().parents[3]
DOCS = (REPO / "docs" / "devices.md").read_text()
CONTEXT = SourceContext("A", "B", "A-B", "/etc/qkms")


@pytest.mark.parametrize("model", [Etsi014Settings, Etsi004Settings])
def test_every_setting_is_in_the_settings_table(model) -> None:
    table = DOCS[DOCS.index("## Settings"):DOCS.index("## Attaching a real device")]
    for name in model.model_fields:
        assert f"`{name}`" in table, f"{name} missing from docs/devices.md"
    assert "`ends`" in table


def test_the_attach_example_is_a_valid_section() -> None:
    snippet = re.search(r"```yaml\n(.*?)```", DOCS[DOCS.index("## Attaching a real device"):], re.S).group(1)
    source = yaml.safe_load(snippet)["links"][0]["source"]
    settings = parse_settings({k: v for k, v in source.items() if k != "kind"}, CONTEXT, "etsi014", "qkd-device",
                              "etsi014-generic")
    assert (settings.profile, settings.sae_id, settings.expected_name) == ("idq-cerberis-xgr", "CONSA",
                                                                         "cerberis-a.lab.example")


def test_the_example_config_s_device_link_is_a_valid_section() -> None:
    text = (REPO / "config" / "example.yaml").read_text()
    lines = text[text.index("    # source:\n    #   kind: qkd-device"):].splitlines()
    block = [lines[0]] + list(itertools.takewhile(lambda line: line.startswith("    #   "), lines[1:]))
    source = yaml.safe_load("\n".join(line.replace("#", "", 1) for line in block))["source"]
    settings = parse_settings({k: v for k, v in source.items() if k != "kind"}, CONTEXT, "etsi014", "qkd-device",
                              "etsi014-generic")
    assert settings.keys_per_request == 1 and settings.enc_keys_method == "GET"
