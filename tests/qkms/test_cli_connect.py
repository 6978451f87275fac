"""`qkms connect`: option checks that refuse to start an agent (no node needed); `qkms init`
names each node's SKIP base URL."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qkms.cli import main

COMMON = ["--tunnel", "t", "--peer-sae", "sae-2", "--kme-url", "https://127.0.0.1:1"]


def invoke(*args: str):
    return CliRunner().invoke(main, ["connect", *args])


def test_every_application_has_a_subcommand():
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("wireguard", "strongswan", "tls-psk", "file"):
        assert name in result.output


def test_wireguard_refuses_rotating_faster_than_it_rekeys():
    result = invoke("wireguard", "--role", "initiator", *COMMON, "--device", "wg0", "--peer-public-key", "x",
                    "--interval-s", "30")
    assert result.exit_code != 0 and "--interval-s must be at least 120 s" in result.output


def test_an_agent_needs_its_identity(tmp_path):
    result = invoke("file", "--role", "responder", *COMMON, "--path", str(tmp_path / "k"))
    assert result.exit_code != 0 and "give --kme-url, --cert, --key and --ca" in result.output


def test_a_manifest_needs_the_sae(tmp_path):
    (tmp_path / "manifest.json").write_text('{"ca": "ca.crt", "nodes": {}, "saes": {}}')
    result = invoke("file", "--role", "responder", "--tunnel", "t", "--peer-sae", "p", "--manifest", str(tmp_path),
                    "--sae", "nobody", "--path", str(tmp_path / "k"))
    assert result.exit_code != 0 and "--manifest needs --sae" in result.output


def test_init_gives_each_nodes_skip_base_url_beside_its_url(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "net"), "--node", "A", "--node", "C",
                                       "--link", "A-C", "--json"])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["nodes"]
    assert all(set(entry) == {"config", "url", "skip_url"} and entry["skip_url"] == entry["url"]
               for entry in nodes.values())
