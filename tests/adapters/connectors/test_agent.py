"""The agent pair in process: the real mutual-TLS channel and file installers, a fake
node behind each agent (the real nodes: tests/integration/connectors). Key material is
compared by digest, never shown."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.connectors.agent import AgentSettings, InitiatorAgent, ResponderAgent
from adapters.connectors.channel import (ANNOUNCE_PATH, STATUS_PATH, ChannelClient, ChannelServer,
                                         SaeCredentials)
from adapters.connectors.errors import ConnectorError
from adapters.connectors.file_sink import FileSinkInstaller
from adapters.etsi014_client import DeliveredKey, Etsi014Error
from kms.pki import CertificateAuthority
from tests.support.conditions import wait_until


class FakeNodes:
    """Both SAEs' nodes: enc_keys reserves a key for the slave, dec_keys hands it out once."""

    def __init__(self):
        self.reserved: dict[str, bytes] = {}
        self.down = False
        self.tamper = False

    def enc_keys(self, slave, number=1, size_bits=256):
        if self.down:
            raise Etsi014Error(503, {"message": "keys are not available"})
        key = DeliveredKey(str(uuid.uuid4()), os.urandom(size_bits // 8), {})
        self.reserved[key.key_id] = key.material
        return [key]

    def dec_keys(self, master, key_ids):
        (key_id,) = key_ids
        if key_id not in self.reserved:
            raise Etsi014Error(400, {"message": "one or more keys specified are not found on KME"})
        material = self.reserved.pop(key_id)
        return [DeliveredKey(key_id, os.urandom(len(material)) if self.tamper else material, {})]


@dataclass
class Pair:
    initiator: InitiatorAgent
    responder: ResponderAgent
    nodes: FakeNodes
    files: tuple[Path, Path]
    server: ChannelServer
    credentials: dict[str, SaeCredentials]

    def digests(self) -> tuple[str, str]:
        return tuple(hashlib.sha256(f.read_bytes()).hexdigest() for f in self.files)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> dict[str, SaeCredentials]:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create("test CA")
    ca.save(root / "ca.crt", root / "ca.key")
    out = {}
    for sae in ("sae-a", "sae-b", "mallory"):
        ca.issue_sae_certificate(sae).save(root / f"{sae}.crt", root / f"{sae}.key")
        out[sae] = SaeCredentials(root / f"{sae}.crt", root / f"{sae}.key", root / "ca.crt")
    return out


def make_pair(tmp_path, credentials, interval_s=60.0, grace_s=30.0, serve=True) -> Pair:
    nodes = FakeNodes()
    files = (tmp_path / "a" / "key", tmp_path / "b" / "key")
    responder = ResponderAgent(FileSinkInstaller(files[1]), nodes,
                               AgentSettings("t1", "sae-a", interval_s, 1.0, grace_s))
    server = ChannelServer(("127.0.0.1", 0), credentials["sae-b"], "sae-a", responder.routes(), responder.status)
    if serve:
        server.start()
    client = ChannelClient(f"127.0.0.1:{server.address[1]}", credentials["sae-a"], "sae-b")
    initiator = InitiatorAgent(FileSinkInstaller(files[0]), nodes, AgentSettings("t1", "sae-b", interval_s, 1.0, grace_s),
                               client)
    return Pair(initiator, responder, nodes, files, server, credentials)


@pytest.fixture
def pair(tmp_path, credentials):
    made = make_pair(tmp_path, credentials)
    yield made
    made.server.stop()


def test_starting_agents_fail_closed_with_different_random_keys(pair):
    pair.initiator.fail_closed("starting")
    pair.responder.fail_closed("starting")
    a, b = pair.digests()
    assert a != b and pair.initiator.status()["state"] == pair.responder.status()["state"] == "fail-closed"


def test_a_rotation_installs_the_same_key_at_both_ends(pair):
    assert pair.initiator.rotate()
    a, b = pair.digests()
    assert a == b
    assert pair.initiator.status()["state"] == pair.responder.status()["state"] == "keyed"
    assert pair.initiator.status()["sequence"] == pair.responder.status()["sequence"] == 1
    assert set(pair.initiator.status()["last_rotation_ms"]) >= {"enc_keys", "enc_keys_to_installed_at_both"}
    assert pair.nodes.reserved == {}  # the responder fetched the key: delivered once
    assert pair.initiator.rotate() and pair.digests()[0] != a and len(set(pair.digests())) == 1


def test_the_installed_key_is_derived_not_the_delivered_one(pair):
    seen = {}
    original = pair.nodes.enc_keys

    def spy(*args, **kwargs):
        keys = original(*args, **kwargs)
        seen["material"] = keys[0].material
        return keys

    pair.nodes.enc_keys = spy
    assert pair.initiator.rotate()
    installed = hashlib.sha256(pair.files[0].read_bytes()).digest()
    assert installed != hashlib.sha256(seen["material"]).digest()


def test_a_mismatched_key_fails_both_ends_closed(pair):
    pair.nodes.tamper = True  # the responder's node hands out other bytes
    assert not pair.initiator.rotate()
    a, b = pair.digests()
    assert a != b
    assert pair.initiator.status()["state"] == pair.responder.status()["state"] == "fail-closed"
    assert "confirmed another key" in pair.initiator.status()["reason"]


def test_an_unreachable_node_fails_both_ends_closed(pair):
    assert pair.initiator.rotate()
    pair.nodes.down = True
    assert not pair.initiator.rotate()
    assert pair.initiator.status()["state"] == pair.responder.status()["state"] == "fail-closed"
    assert pair.digests()[0] != pair.digests()[1]


def test_an_unreachable_responder_fails_the_initiator_closed(pair):
    pair.server.stop()
    assert not pair.initiator.rotate()
    assert pair.initiator.status()["state"] == "fail-closed"
    assert "unreachable" in pair.initiator.status()["reason"]


def test_a_key_announced_twice_is_not_installed_twice(pair):
    assert pair.initiator.rotate()
    client = pair.initiator.peer
    replay = {"tunnel": "t1", "application": "file", "key_ID": str(uuid.uuid4()), "sequence": 9, "valid_for_s": 9}
    with pytest.raises(ConnectorError, match="503"):
        client.post(ANNOUNCE_PATH, replay)
    assert pair.responder.status()["state"] == "fail-closed"


@pytest.mark.parametrize("change, message", [
    ({"tunnel": "other"}, "another tunnel"), ({"application": "wireguard"}, "another tunnel"),
    ({"key_ID": "nope"}, "UUID"), ({"sequence": 0}, "sequence"), ({"valid_for_s": -1}, "valid_for_s"),
])
def test_malformed_announcements_are_400_and_fail_closed(pair, change, message):
    body = {"tunnel": "t1", "application": "file", "key_ID": str(uuid.uuid4()), "sequence": 1,
            "valid_for_s": 9, **change}
    with pytest.raises(ConnectorError, match=f"400.*{message}"):
        pair.initiator.peer.post(ANNOUNCE_PATH, body)
    assert pair.responder.status()["state"] == "fail-closed"


def test_the_responder_fails_closed_when_no_new_key_comes(tmp_path, credentials):
    # The key is valid for interval + grace = 2 s: time enough for the rotation's reply,
    # its check and the initiator's fsynced install before the state is read.
    pair = make_pair(tmp_path, credentials, interval_s=1, grace_s=1, serve=False)
    stop = threading.Event()
    thread = threading.Thread(target=pair.responder.run, args=(stop, pair.server))
    try:
        thread.start()
        wait_until(lambda: pair.responder.status()["state"] == "fail-closed", "starting fails closed", 30)
        assert pair.initiator.rotate()
        assert pair.responder.status()["state"] == "keyed"
        wait_until(lambda: pair.responder.status()["state"] == "fail-closed", "expiry fails closed", 30)
        assert "in time" in pair.responder.status()["reason"]
    finally:
        stop.set()
        thread.join(10)


def test_only_the_peer_sae_may_announce(pair, credentials):
    intruder = ChannelClient(f"127.0.0.1:{pair.server.address[1]}", credentials["mallory"], "sae-b")
    with pytest.raises(ConnectorError, match="401"):
        intruder.post(ANNOUNCE_PATH, {"tunnel": "t1"})


def test_the_initiator_talks_only_to_the_peer_sae(pair, credentials):
    impostor = ChannelServer(("127.0.0.1", 0), credentials["mallory"], "sae-a", pair.responder.routes(),
                             pair.responder.status)
    impostor.start()
    try:
        client = ChannelClient(f"127.0.0.1:{impostor.address[1]}", credentials["sae-a"], "sae-b")
        with pytest.raises(ConnectorError, match="'mallory', not 'sae-b'"):
            client.post(ANNOUNCE_PATH, {})
    finally:
        impostor.stop()


def test_status_names_no_key_id(pair):
    import http.client
    import json

    assert pair.initiator.rotate()
    context = pair.credentials["sae-a"].context(server_side=False)
    connection = http.client.HTTPSConnection("127.0.0.1", pair.server.address[1], context=context, timeout=5)
    connection.request("GET", STATUS_PATH)
    body = json.loads(connection.getresponse().read())
    connection.close()
    assert body["state"] == "keyed" and body["role"] == "responder" and body["tunnel"] == "t1"
    assert "key_ID" not in json.dumps(body)
