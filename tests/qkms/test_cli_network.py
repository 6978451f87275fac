"""`qkms init` for a network and `qkms up` as an operator runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cryptography.hazmat.primitives import serialization

from adapters.quantum_internet.pass_schedule import DEFAULT_PASS_INTERVAL_S
from kms.config import load_config
from kms.pki import admin_identity_from_der, read_certificate
from qkms.cli import main
from qkms.linkd import validate_link_sources
from tests.support.conditions import wait_until


def test_init_writes_a_network_with_the_single_node_manifest_shape(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "net"), "--node", "A", "--node", "B", "--node", "C",
                                       "--link", "A-B", "--link", "B-C", "--sae", "sae-a@A", "--sae", "sae-c@C",
                                       "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert set(manifest) == {"ca", "nodes", "saes", "admin"} and set(manifest["nodes"]) == {"A", "B", "C"}
    assert manifest["saes"]["sae-c"]["node"] == "C"
    admin_der = read_certificate(manifest["admin"]["cert"]).public_bytes(serialization.Encoding.DER)
    assert admin_identity_from_der(admin_der) == manifest["admin"]["name"] == "admin"
    b = load_config(manifest["nodes"]["B"]["config"])
    assert [link.id for link in b.local_links()] == ["A-B", "B-C"] and b.saes == ()
    assert {peer.kme_id: peer.saes for peer in b.peers} == {"A": ("sae-a",), "C": ("sae-c",)}
    a = load_config(manifest["nodes"]["A"]["config"])
    assert a.admins == ("admin",)
    assert a.links[1].source == {"kind": "simulated"}  # not an end of B-C: only its kind
    assert a.links[0].source["kind"] == "simulated" and (a.config_dir / a.links[0].source["seed_file"]).is_file()
    seeds = [(tmp_path / "net" / "nodes" / n / "links" / "A-B.seed").read_bytes() for n in ("A", "B")]
    assert seeds[0] == seeds[1] and len(seeds[0]) >= 32


def test_init_gives_links_the_default_source_or_their_own_and_the_policy(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "net"), "--node", "A", "--node", "B", "--node", "C",
                                       "--link", "A-B", "--link", "B-C=satellite", "--link-source", "entangled",
                                       "--link-policy", "qkd-then-pqc", "--length-km", "5", "--json"])
    assert result.exit_code == 0, result.output
    b = load_config(json.loads(result.output)["nodes"]["B"]["config"])
    a_b, b_c = b.local_links()
    assert a_b.source["kind"] == "entangled" and a_b.source["length_km"] == 5
    assert b_c.source["kind"] == "satellite" and "length_km" not in b_c.source  # a downlink has no fibre
    assert {a_b.policy, b_c.policy} == {"qkd-then-pqc"} and a_b.pqc["kind"] == b_c.pqc["kind"] == "ml-kem"


def test_init_gives_two_downlinks_of_one_satellite_passes_half_an_orbit_apart(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "net"), "--node", "G1", "--node", "SAT", "--node", "G2",
                                       "--link", "G1-SAT=satellite", "--link", "SAT-G2=satellite", "--json"])
    assert result.exit_code == 0, result.output
    sat = load_config(json.loads(result.output)["nodes"]["SAT"]["config"])
    offsets = [link.source.get("pass_offset_s") for link in sat.local_links()]
    assert offsets == [0.0, DEFAULT_PASS_INTERVAL_S / 2]
    validate_link_sources(sat)  # qkms serve accepts them: the passes never overlap


def test_init_leaves_a_lone_satellite_link_on_its_default_schedule(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "net"), "--node", "A", "--node", "B", "--node", "C",
                                       "--link", "A-B=satellite", "--link", "B-C", "--json"])
    assert result.exit_code == 0, result.output
    b = load_config(json.loads(result.output)["nodes"]["B"]["config"])
    assert "pass_offset_s" not in b.local_links()[0].source


@pytest.mark.parametrize("args, message", [
    (["--node", "A", "--node", "B", "--link", "A-C"], "--link A-C"),
    (["--node", "A", "--node", "B", "--link", "A-B=warp"], "--link A-B=warp: unknown source 'warp'"),
    (["--node", "A", "--node", "A"], "--node"),
    (["--node", "A", "--node", "B", "--sae", "x"], "--sae x"),
])
def test_init_names_the_bad_option(tmp_path, args, message):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "n"), *args])
    assert result.exit_code != 0 and message in result.output


def check_up_until_announced(root: Path, announcements: int, timeout_s: float) -> str:
    """Run `qkms up root` until it has announced ``announcements`` listeners, then Ctrl-C
    it; its output, once it exited 0 leaving no process of ``root`` behind."""
    up = subprocess.Popen([sys.executable, "-m", "qkms", "up", str(root)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(up.stdout), daemon=True)
    reader.start()
    try:
        # `up` announces each process once all of them listen: Ctrl-C from then on stops them all.
        wait_until(lambda: sum(" listening at " in line for line in lines) == announcements or up.poll() is not None,
                   f"`qkms up` to announce {announcements} listeners", timeout_s)
        assert up.poll() is None, "".join(lines)
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    finally:
        if up.poll() is None:
            up.kill()
    reader.join(timeout=10)
    output = "".join(lines)
    assert up.returncode == 0, output
    leftover = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a node or device process outlived `qkms up`"
    return output


@pytest.mark.integration
@pytest.mark.slow
def test_up_starts_every_node_and_ctrl_c_stops_them_all(tmp_path):
    root = tmp_path / "net"
    CliRunner().invoke(main, ["init", str(root), "--node", "A", "--node", "B", "--link", "A-B"])
    manifest = json.loads((root / "manifest.json").read_text())
    output = check_up_until_announced(root, len(manifest["nodes"]), 120)
    assert "stopping all nodes" in output
    assert yaml.safe_load((root / "nodes" / "A" / "config.yaml").read_text())["kme_id"] == "A"


@pytest.mark.parametrize("link_source, kind", [("mock-device", "qkd-device"), ("mock-device-004", "qkd-device-004")])
def test_init_with_mock_devices_feeds_every_link_from_a_device_pair(tmp_path, link_source, kind):
    from adapters.devices.mock.config import load_mock_config
    from qkms.linkd import validate_link_sources

    result = CliRunner().invoke(main, ["init", str(tmp_path / "net"), "--node", "A", "--node", "B", "--node", "C",
                                       "--link", "A-B", "--link", "B-C", "--link-source", link_source, "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert set(manifest) == {"ca", "nodes", "saes", "admin", "devices", "mock_devices"}
    assert set(manifest["devices"]) == {"A-B", "B-C"} and set(manifest["devices"]["A-B"]) == {"A", "B"}
    for link_id, ends in manifest["devices"].items():
        for kme_id, entry in ends.items():
            assert {"url", "sae_id", "cert", "key", "ca"} <= set(entry)
            assert all(Path(entry[name]).is_file() for name in ("cert", "key", "ca"))
            config = load_config(manifest["nodes"][kme_id]["config"])
            validate_link_sources(config)  # every device-fed link end is a valid source section
            source = next(link.source for link in config.links if link.id == link_id)
            assert source["kind"] == kind and source["url"] == entry["url"]
            device = load_mock_config(manifest["mock_devices"][link_id][kme_id]["config"])
            assert f"https://127.0.0.1:{device.listen.port}" == entry["url"]
            assert device.saes[0].id == entry["sae_id"] and device.link_id == link_id
            if kind == "qkd-device-004":
                assert device.push_url == manifest["nodes"][kme_id]["url"] + "/api/v1/qkd/etsi004/key-material"
        seeds = {load_mock_config(m["config"]).simulation["seed_file"] for m in manifest["mock_devices"][link_id].values()}
        assert len(seeds) == 1, "the two devices of a pair share one seed"
    assert not (tmp_path / "net" / "nodes" / "A" / "links").exists(), "no simulated-link seed for device-fed links"


def test_a_device_fed_link_takes_a_policy_that_uses_qkd(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "net"), "--node", "A", "--node", "B", "--link", "A-B",
                                       "--link-source", "mock-device", "--link-policy", "qkd-then-pqc", "--json"])
    assert result.exit_code == 0, result.output
    config = load_config(json.loads(result.output)["nodes"]["A"]["config"])
    (link,) = config.links
    assert (link.policy, link.source["kind"], link.pqc["kind"]) == ("qkd-then-pqc", "qkd-device", "ml-kem")
    refused = CliRunner().invoke(main, ["init", str(tmp_path / "pqc"), "--node", "A", "--node", "B", "--link", "A-B",
                                        "--link-source", "mock-device", "--link-policy", "pqc-only"])
    assert refused.exit_code != 0 and "a pqc-only link has no QKD source for mock-device to feed" in refused.output
    assert not (tmp_path / "pqc" / "manifest.json").exists()


def test_init_refuses_an_unknown_link_source(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "n"), "--node", "A", "--node", "B", "--link", "A-B",
                                       "--link-source", "carrier-pigeon"])
    assert result.exit_code != 0 and "--link-source" in result.output


@pytest.mark.integration
@pytest.mark.slow
def test_up_runs_the_mock_devices_too_and_stops_them(tmp_path):
    root = tmp_path / "net"
    CliRunner().invoke(main, ["init", str(root), "--node", "A", "--node", "B", "--link", "A-B",
                              "--link-source", "mock-device"])
    output = check_up_until_announced(root, 4, 180)  # two nodes, two devices
    assert any(line.startswith("qkd-a-b-a listening at") for line in output.splitlines())
