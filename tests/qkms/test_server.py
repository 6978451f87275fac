"""qkms.server: a node refuses a listening port that another socket holds."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from kms.config import load_config
from kms.errors import ConfigError
from qkms.layout import NodePlan, free_port, write_layout
from qkms.server import ensure_listen_port_free


@pytest.fixture
def config(tmp_path):
    manifest = write_layout(tmp_path, [NodePlan("KME-1", ("sae-1", "sae-2"), free_port())]).to_dict()
    return load_config(manifest["nodes"]["KME-1"]["config"])


def test_free_port_passes(config):
    ensure_listen_port_free(config, wait_s=0)


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
