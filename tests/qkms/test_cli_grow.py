"""`qkms init DIR --add-node/--add-link` grows a layout whose network runs, and the
`qkms admin`/`qkms audit` commands fail with a message when there is nothing to ask."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kms.config import load_config
from qkms.cli import main


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "net"
    result = CliRunner().invoke(main, ["init", str(root), "--node", "A", "--node", "B", "--link", "A-B"])
    assert result.exit_code == 0, result.output
    return root


def test_added_node_and_link_are_written_and_the_running_nodes_files_are_not_touched(layout):
    before = {n: (layout / "nodes" / n / "config.yaml").read_text() for n in ("A", "B")}
    result = CliRunner().invoke(main, ["init", str(layout), "--add-node", "C", "--add-link", "B-C",
                                       "--sae", "sae-c@C"])
    assert result.exit_code == 0, result.output
    assert {n: (layout / "nodes" / n / "config.yaml").read_text() for n in ("A", "B")} == before
    manifest = json.loads((layout / "manifest.json").read_text())
    assert set(manifest["nodes"]) == {"A", "B", "C"} and manifest["saes"]["sae-c"]["node"] == "C"
    c = load_config(manifest["nodes"]["C"]["config"])
    assert {link.id for link in c.links} == {"A-B", "B-C"} and {p.kme_id for p in c.peers} == {"A", "B"}
    seeds = [(layout / "nodes" / n / "links" / "B-C.seed").read_bytes() for n in ("B", "C")]
    assert seeds[0] == seeds[1]
    node_body = json.loads((layout / "additions" / "nodes" / "C.json").read_text())
    assert node_body == {"kme_id": "C", "url": manifest["nodes"]["C"]["url"], "saes": ["sae-c"]}
    link_body = json.loads((layout / "additions" / "links" / "B-C.json").read_text())
    assert link_body["link"]["nodes"] == ["B", "C"] and link_body["link"]["source"] == {"kind": "simulated"}
    assert set(link_body["at"]) == {"B", "C"} and link_body["at"]["B"]["source"]["seed_file"] == "links/B-C.seed"


def test_an_added_link_takes_its_source_and_policy_as_in_init(layout):
    result = CliRunner().invoke(main, ["init", str(layout), "--add-node", "C", "--add-link", "B-C=repeater-chain",
                                       "--link-policy", "hybrid"])
    assert result.exit_code == 0, result.output
    link_body = json.loads((layout / "additions" / "links" / "B-C.json").read_text())
    assert link_body["link"]["source"] == {"kind": "repeater-chain"} and link_body["link"]["policy"] == "hybrid"
    assert link_body["at"]["C"]["source"]["segments"] == 8 and link_body["at"]["C"]["pqc"]["kind"] == "ml-kem"


@pytest.mark.parametrize("args, message", [
    (["--add-node", "B"], "--add-node B"),
    (["--add-node", "C", "--add-link", "B-C=warp"], "--add-link B-C=warp"),
    (["--add-link", "A-B"], "--add-link A-B"),
    (["--add-link", "A-Z"], "--add-link A-Z"),
    (["--add-node", "C", "--sae", "sae-a@C"], "--sae sae-a"),
    (["--add-node", "C", "--node", "D"], "--add-node/--add-link"),
])
def test_a_bad_addition_names_the_option_and_writes_nothing(layout, args, message):
    manifest = (layout / "manifest.json").read_text()
    result = CliRunner().invoke(main, ["init", str(layout), *args])
    assert result.exit_code != 0 and message in result.output
    assert (layout / "manifest.json").read_text() == manifest and not (layout / "additions").exists()


def test_additions_need_a_layout(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path), "--add-node", "C"])
    assert result.exit_code != 0 and "holds no qkms layout" in result.output


def test_admin_commands_say_when_no_node_answers(layout):
    result = CliRunner().invoke(main, ["admin", "links", str(layout)])
    assert result.exit_code != 0 and "no node answered" in result.output


def test_admin_add_link_needs_the_written_addition(layout):
    result = CliRunner().invoke(main, ["admin", "add-link", str(layout), "B-C"])
    assert result.exit_code != 0 and f"qkms init {layout} --add-link B-C" in result.output


def test_eavesdropper_takes_exactly_one_of_attack_and_off(layout):
    result = CliRunner().invoke(main, ["admin", "eavesdropper", str(layout), "A-B"])
    assert result.exit_code != 0 and "exactly one of --attack and --off" in result.output


def test_audit_says_when_no_entry_names_the_key(layout):
    result = CliRunner().invoke(main, ["audit", str(layout), "--key-id", "5f0c6a3e-0000-4000-8000-000000000000"])
    assert result.exit_code != 0 and "no audit entry names key_ID" in result.output
