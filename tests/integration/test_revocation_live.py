"""Revocation on a running node: `qkms pki revoke` writes the CA's CRL and the node
refuses the revoked SAE from its next connection (and at the next request of a
connection already open), without a restart, while other SAEs go on being served."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.support.conditions import wait_until
from tests.support.tls_probes import python_client

pytestmark = pytest.mark.integration


def qkms_pki(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qkms", "pki", *args], capture_output=True, text=True, timeout=60)


def new_connection(node, sae_id: str):
    sae = node.manifest["saes"][sae_id]
    return python_client(int(node.url.rsplit(":", 1)[1]), node.manifest["ca"], sae["cert"], sae["key"])


def test_a_revoked_sae_is_refused_without_a_restart(make_node) -> None:
    node = make_node(saes=("sae-1", "sae-2"))
    open_client = node.client("sae-1")
    assert open_client.status("sae-2")["master_SAE_ID"] == "sae-1"  # keeps its connection open
    assert new_connection(node, "sae-1").answer == "HTTP/1.1 200 OK"
    pid = node.process.process.pid

    result = qkms_pki("revoke", "--ca-dir", str(node.root / "pki"), node.manifest["saes"]["sae-1"]["cert"])
    assert result.returncode == 0, result.stderr

    wait_until(lambda: new_connection(node, "sae-1").refused, "the node to refuse sae-1's new connections", 30)
    wait_until(lambda: "CERTIFICATE_VERIFY_FAILED: certificate revoked" in node.process.log_text(),
               "the node to log why it refused sae-1", 30)
    answer = open_client.request("GET", "sae-2/status")
    assert answer.status_code == 401 and answer.json() == {"message": "the client certificate has been revoked"}
    assert new_connection(node, "sae-2").answer == "HTTP/1.1 200 OK"
    assert node.client("sae-2").status("sae-1")["master_SAE_ID"] == "sae-2"
    assert node.process.process.pid == pid and node.process.process.poll() is None  # no restart


def test_every_worker_refuses_a_serial_revoked_in_hex(make_node) -> None:
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 3}})
    shown = qkms_pki("show", node.manifest["saes"]["sae-2"]["cert"]).stdout
    serial = next(line.split()[-1] for line in shown.splitlines() if line.startswith("serial"))
    assert qkms_pki("revoke", "--ca-dir", str(node.root / "pki"), serial).returncode == 0
    # Connections spread over the workers (SO_REUSEPORT): twenty in a row all refused.
    wait_until(lambda: new_connection(node, "sae-2").refused, "sae-2 to be refused", 30)
    outcomes = [new_connection(node, "sae-2") for _ in range(20)]
    assert all(outcome.refused for outcome in outcomes), [o.answer for o in outcomes]
    assert all(new_connection(node, "sae-1").answer == "HTTP/1.1 200 OK" for _ in range(5))
    with pytest.raises(httpx.HTTPError):
        with httpx.Client(verify=False) as plain:
            plain.get(node.url + "/healthz")
