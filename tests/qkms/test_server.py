"""qkms.server: a node refuses a listening port that another socket holds, and a link
source setting that its source rejects, before it starts anything."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kms.config import load_config
from kms.errors import ConfigError
from qkms.layout import DEMO_LINK_SOURCE, LinkPlan, NodePlan, free_port, write_layout
from qkms.runner import stop_process
from qkms.server import check_link_sources, ensure_listen_port_free


@pytest.fixture
def config(tmp_path):
    manifest = write_layout(tmp_path, [NodePlan("KME-1", ("sae-1", "sae-2"), free_port())]).to_dict()
    return load_config(manifest["nodes"]["KME-1"]["config"])


def test_free_port_passes_and_stays_free(config):
    ensure_listen_port_free(config, wait_s=0)
    with socket.socket() as listener:  # the check holds no socket on the port
        listener.bind(("127.0.0.1", config.listen.port))
        listener.listen()
        assert listener.getsockname()[1] == config.listen.port


def test_port_with_a_listener_is_refused(config):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", config.listen.port))
        listener.listen()
        with pytest.raises(ConfigError, match=rf"listen: 127\.0\.0\.1:{config.listen.port} is already in use"):
            ensure_listen_port_free(config, wait_s=0.5)


@pytest.mark.integration
def test_second_node_on_the_same_port_does_not_start(make_node):
    node = make_node(saes=("sae-1", "sae-2"))
    second = subprocess.run([sys.executable, "-m", "qkms", "serve", "--config", str(node.config_path)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert "is already in use" in second.stderr
    assert node.client("sae-1").status("sae-2")["source_KME_ID"] == "KME-1"


# --- link sources are validated before anything starts -------------------------------------

def two_node_layout(tmp_path, source: dict) -> dict:
    plans = [NodePlan("A", ("sae-a",), free_port()), NodePlan("B", ("sae-b",), free_port())]
    return write_layout(tmp_path, plans, [LinkPlan("A-B", ("A", "B"), source)]).to_dict()


@pytest.mark.integration
def test_a_bad_link_source_setting_stops_serve_before_anything_starts(tmp_path):
    manifest = two_node_layout(tmp_path, {**DEMO_LINK_SOURCE, "length_km": -1})
    config_path = Path(manifest["nodes"]["A"]["config"])
    serve = subprocess.Popen([sys.executable, "-m", "qkms", "serve", "--config", str(config_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = serve.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(serve)
        pytest.fail("qkms serve started a node whose link source setting is invalid")
    assert serve.returncode != 0
    assert "links[0].source.length_km: " in stderr
    assert not (config_path.parent / "data").exists(), "the embedded Redis was started"
    assert not port_open(int(manifest["nodes"]["A"]["url"].rsplit(":", 1)[1]))
    leftover = subprocess.run(["pgrep", "-f", str(config_path)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a process of the node is still running"


@pytest.mark.integration  # runs `qkms linkd --check` as a child process
def test_checking_link_sources_keeps_the_simulator_out_of_the_serving_process(tmp_path):
    """The gunicorn master forks its workers: what it imports, every worker carries."""
    manifest = two_node_layout(tmp_path, DEMO_LINK_SOURCE)
    probe = ("import sys; from pathlib import Path; from kms.config import load_config;"
             "from qkms.server import check_link_sources;"
             f"path = Path({manifest['nodes']['A']['config']!r});"
             "check_link_sources(load_config(path), path);"
             "print(sorted(m for m in ('scipy', 'adapters.qkd_sim.source') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.integration  # runs `qkms linkd --check` as a child process
def test_checking_link_sources_reports_the_childs_finding(tmp_path):
    manifest = two_node_layout(tmp_path, {**DEMO_LINK_SOURCE, "eve": {"kind": "photon-thief"}})
    path = Path(manifest["nodes"]["B"]["config"])
    with pytest.raises(ConfigError, match=r"^links\[0\]\.source\.eve\.kind: unknown attack 'photon-thief'"):
        check_link_sources(load_config(path), path)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
