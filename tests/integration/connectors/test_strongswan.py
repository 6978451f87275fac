"""strongSwan with qkms PPKs (RFC 8784): two charon daemons in a private network
namespace, each beside a `qkms connect strongswan` agent whose SAE sits at node A or C.
The IKE_SA is established with a PPK whose PPK_ID is the key_ID, and re-established
with the next key after each rotation (kernel IPsec is not available here: the IKE_SA,
marked PPK, is the proof)."""

from __future__ import annotations

import os
import uuid

import pytest
import yaml

from tests.support.connect import agent_pair, stop_pair
from tests.support.conditions import wait_until
from tests.support.netns import require_namespaces
from tests.support.strongswan import CHARON, CharonPair

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def charons(tmp_path):
    require_namespaces(CHARON)
    pair = CharonPair(tmp_path)
    try:
        yield pair.start(os.urandom(32))
    finally:
        pair.stop()


def one_established_with_ppk(charons) -> list[dict] | None:
    """The initiator's IKE_SAs if they are exactly one, established, with a PPK."""
    sas = charons.initiator.ike_sas("qkms-a")
    return sas if [(sa["state"], sa["ppk"]) for sa in sas] == [("ESTABLISHED", "yes")] else None


def test_ike_sas_use_qkms_ppks_and_reauthenticate_after_rotation(qnet, charons, tmp_path):
    conn_file = tmp_path / "conn.yaml"
    conn_file.write_text(yaml.safe_dump(charons.initiator_conn))
    init, resp = agent_pair(
        qnet, "strongswan", "ike-hq",
        ("ike-a", ["--vici-socket", str(charons.initiator.vici), "--conn", str(conn_file)]),
        ("ike-c", ["--vici-socket", str(charons.responder.vici), "--ike", "qkms-c"]),
        interval_s=3, grace_s=20)
    try:
        init.wait_for(60, "first key", state="keyed", sequence=1)
        # Read between rotations (every 3 s): during one the old and the new IKE_SA coexist.
        first = wait_until(lambda: one_established_with_ppk(charons), "one IKE_SA with a PPK at the initiator", 30)
        init.wait_for(60, "two rotations", state="keyed", sequence=3)
        now = wait_until(lambda: (sas := one_established_with_ppk(charons)) and sas[0]["uniqueid"] != first[0]["uniqueid"]
                         and sas, "the IKE_SA re-authenticated with a new PPK, the old one deleted", 30)
        assert [(sa["state"], sa["ppk"]) for sa in now] == [("ESTABLISHED", "yes")]
        # charon writes its log a moment later
        used = wait_until(lambda: ids if len(ids := charons.responder.ppk_ids_used()) >= 3 else None,
                          "three PPK_IDs in the responder's log", 30)
        assert len(set(used)) == len(used)  # a new PPK_ID for every IKE_SA
        assert all(str(uuid.UUID(ppk_id)) == ppk_id for ppk_id in used)  # PPK_ID = key_ID
        initiator_used = charons.initiator.ppk_ids_used()  # either log may be a rotation ahead
        common = min(len(initiator_used), len(used))
        assert initiator_used[:common] == used[:common]
    finally:
        stop_pair(init, resp)
    # stopped agents fail closed: no IKE_SA survives them
    assert charons.initiator.ike_sas("qkms-a") == []


def test_a_mismatched_ppk_fails_the_ike_sa(qnet, charons, tmp_path):
    """The responder holds another key under the announced PPK_ID: no IKE_SA comes up."""
    from adapters.connectors.strongswan import StrongSwanInstaller

    key_id = str(uuid.uuid4())
    responder = StrongSwanInstaller("responder", str(charons.responder.vici), ike="qkms-c")
    initiator = StrongSwanInstaller("initiator", str(charons.initiator.vici), charons.initiator_conn)
    responder.install(os.urandom(32), key_id)
    with pytest.raises(Exception, match="charon refused"):
        initiator.install(os.urandom(32), key_id)
    assert charons.initiator.ike_sas("qkms-a") == []
