"""The admin API and `qkms admin`/`qkms audit` on a network of real node processes.

Nodes A and B run (link A-B); node C and link B-C are added while they run (`qkms init
DIR --add-node C --add-link B-C`, `qkms admin add-node`/`add-link`, then C is started),
an SAE is added and a link paused with admin commands; every change takes effect on the
running nodes and is still in force after every node restarted. A key relayed A -> B ->
C is followed through the nodes' audit files with `qkms audit DIR --key-id`.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from click.testing import CliRunner

from adapters.etsi014_client import Etsi014Error, client_tls_context
from qkms.cli import main
from qkms.runner import load_manifest, sae_client
from tests.support.conditions import wait_until
from tests.support.network import FAST_LINK, LocalNetwork

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Keys may take this long to reach a pool of a link that has just started.
KEYS_TIMEOUT_S = 180


def qkms(*args: str) -> str:
    result = CliRunner().invoke(main, [*args])
    assert result.exit_code == 0, result.output
    return result.output


def links_by_id(root, node: str | None = None) -> dict[str, dict]:
    """The links as ``node`` (default: the first that answers) knows them."""
    asked = ("--node", node) if node else ()
    return {link["id"]: link for link in json.loads(qkms("admin", "links", str(root), *asked, "--json"))["links"]}


def status_of(call) -> int:
    try:
        call()
    except Etsi014Error as exc:
        return exc.status
    return 200


def refused_with(call) -> int:
    status = status_of(call)
    assert status != 200
    return status


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A-B running, then C and B-C added through the admin API and C started."""
    net = LocalNetwork(tmp_path_factory.mktemp("admin") / "net", {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")],
                       FAST_LINK)
    try:
        net.start()
        qkms("init", str(net.root), "--add-node", "C", "--add-link", "B-C", "--sae", "sae-c@C")
        qkms("admin", "add-node", str(net.root), "C")
        qkms("admin", "add-link", str(net.root), "B-C")
        net.manifest = load_manifest(net.root)
        net.start("C")
        yield net
    finally:
        net.close()


def test_a_node_and_link_added_while_the_network_runs_carry_relayed_keys(grown):
    master, slave = grown.client("sae-a"), grown.client("sae-c")
    grown.wait_for_keys(master, "sae-c", 1, KEYS_TIMEOUT_S)
    keys = master.enc_keys("sae-c", number=1)
    assert [k.material for k in slave.dec_keys("sae-a", [keys[0].key_id])] == [keys[0].material]
    nodes = json.loads(qkms("admin", "nodes", str(grown.root), "--node", "A", "--json"))
    assert {node["kme_id"] for node in nodes["nodes"]} == {"A", "B", "C"}


def test_the_audit_trail_of_a_relayed_key_names_every_node_and_no_key_material(grown):
    master, slave = grown.client("sae-a"), grown.client("sae-c")
    grown.wait_for_keys(master, "sae-c", 1, KEYS_TIMEOUT_S)
    key = master.enc_keys("sae-c", number=1)[0]
    slave.dec_keys("sae-a", [key.key_id])
    trail = [json.loads(line) for line in qkms("audit", str(grown.root), "--key-id", key.key_id, "--json").splitlines()]
    assert [entry["event"] for entry in trail][0] == "enc_keys" and trail[-1]["event"] == "dec_keys"
    assert {entry["node"] for entry in trail} == {"A", "B", "C"}
    assert "path: A -> B -> C" in qkms("audit", str(grown.root), "--key-id", key.key_id)
    written = grown.audit_text()
    assert key.key_id in written
    for material in (base64.b64encode(key.material).decode(), key.material.hex()):
        assert material not in written


def test_callers_without_the_admin_role_get_401(grown):
    sae = grown.manifest["saes"]["sae-a"]
    context = client_tls_context(grown.manifest["ca"], sae["cert"], sae["key"])
    with httpx.Client(verify=context, timeout=30) as client:
        for path in ("/links", "/saes"):
            assert client.get(grown.manifest["nodes"]["A"]["url"] + "/admin/v1" + path).status_code == 401
        answer = client.post(grown.manifest["nodes"]["A"]["url"] + "/admin/v1/links/B-C/pause")
        assert answer.status_code == 401
    assert links_by_id(grown.root)["B-C"]["state"] == "active"


def test_a_bad_change_gets_400_naming_the_field_and_changes_nothing(grown):
    before = qkms("admin", "changes", str(grown.root), "--node", "B", "--json")
    result = CliRunner().invoke(main, ["admin", "set-policy", str(grown.root), "A-B", "qkd-sometimes"])
    assert result.exit_code != 0 and "answered 400" in result.output and "policy" in result.output
    assert qkms("admin", "changes", str(grown.root), "--node", "B", "--json") == before


def test_admin_changes_take_effect_and_survive_a_restart(grown):
    root = grown.root
    qkms("admin", "add-sae", str(root), "sae-a2", "A")
    qkms("admin", "pause", str(root), "B-C")
    manifest = load_manifest(root)
    added, master = sae_client(manifest, "sae-a2"), grown.client("sae-a")
    try:
        grown.wait_for_keys(added, "sae-b", 1, KEYS_TIMEOUT_S)
        assert added.enc_keys("sae-b", number=1)
        assert refused_with(lambda: master.enc_keys("sae-c", number=1)) == 503

        grown.stop()
        grown.start()
        # The link's ends were told at once and keep it; the other nodes hear of it by
        # gossip, which a node just restarted may not have had yet.
        assert links_by_id(root, "B")["B-C"]["state"] == "paused"
        assert links_by_id(root, "C")["B-C"]["state"] == "paused"
        grown.wait_for_keys(added, "sae-b", 1, KEYS_TIMEOUT_S)
        assert refused_with(lambda: master.enc_keys("sae-c", number=1)) == 503

        qkms("admin", "resume", str(root), "B-C")
        qkms("admin", "remove-sae", str(root), "sae-a2")
        wait_until(lambda: status_of(lambda: added.status("sae-b")) == 401, "the removed SAE refused", 30)
        grown.wait_for_keys(master, "sae-c", 1, KEYS_TIMEOUT_S)
        assert master.enc_keys("sae-c", number=1)
    finally:
        added.close()
    wait_until(lambda: all(link["state"] == "active" for link in links_by_id(root).values()), "every link active")
