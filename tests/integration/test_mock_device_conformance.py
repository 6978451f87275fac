"""A pair of mock QKD devices passes the node's own ETSI 014 conformance tests.

The checks are those of tests/etsi_api/test_api_node.py, imported and run here against a
pair of `qkms mock-device` processes over mutual TLS: the master SAE sae-1 at device A,
the slaves sae-2, sae-3 and sae-4 at device B, limits as that module's node (16 keys per
request, 2 additional slaves). Left out, being about a node rather than ETSI 014: its
status figures, provenance extension, OpenAPI document, health endpoint, capacity
setting and keep-alive connections (the node's gevent workers keep them; the mock's
werkzeug server closes each one, which ETSI 014 allows); and one check that a device
answers differently from a node, by design: a master asking its own device for a key it
holds only at the peer device finds it unknown there (400) where a node, holding both,
says 401. Device counterparts of the first and the last are below.
The devices run three simulated frames and stop producing, so stored counts only change
by requests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.etsi_api.test_api_node import (  # noqa: F401 (tests and fixtures, run here against the devices)
    STATUS_FIELDS, assert_error, master, slave, test_bad_dec_keys_body_is_400, test_bad_dec_keys_query_is_400,
    test_bad_enc_keys_body_is_400, test_bad_enc_keys_query_is_400, test_certificate_from_another_ca_is_refused,
    test_certificate_of_unknown_sae_is_401, test_client_without_certificate_is_refused,
    test_duplicate_key_in_dec_keys_is_400_and_consumes_nothing, test_enc_then_dec_delivers_the_same_keys_once,
    test_get_dec_keys_single_id, test_json_edges_are_400_and_change_nothing, test_malformed_json_is_400,
    test_mixed_known_and_unknown_ids_is_400_and_consumes_nothing, test_multicast_each_slave_fetches_once,
    test_non_slave_gets_401_and_consumes_nothing, test_optional_extensions_are_ignored,
    test_oversized_body_is_400_and_the_connection_stays_usable, test_repeated_key_id_is_400_and_consumes_nothing,
    test_tls_below_1_2_is_refused, test_unknown_route_and_method_are_400, test_unknown_slave_is_400,
    test_url_encoded_sae_ids, test_wrong_master_in_path_finds_nothing)
from adapters.etsi014_client import Etsi014Client
from tests.support.conditions import wait_until
from tests.support.devices import MockDevicePair

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MASTER_SAES, SLAVE_SAES = ("sae-1",), ("sae-2", "sae-3", "sae-4")
LIMITS = {"max_keys_per_request": 16, "max_sae_id_count": 2}
FRAMES = 3


class DevicePairUnderTest:
    """What the imported checks call ``node``: clients of the right device per SAE, the
    URL of the master's device, the CA files."""

    def __init__(self, pair: MockDevicePair, root: Path):
        self.pair, self.root = pair, root
        self.url = pair.entries["devices"]["KME-A"]["url"]
        self.manifest = {"ca": str(pair.ca_path)}
        self._clients: list[Etsi014Client] = []

    def client(self, sae_id: str) -> Etsi014Client:
        end = "KME-A" if sae_id in MASTER_SAES else "KME-B"
        client = Etsi014Client(self.pair.entries["devices"][end]["url"], self.root / "saes" / f"{sae_id}.crt",
                               self.root / "saes" / f"{sae_id}.key", self.pair.ca_path)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


def _configure(pair: MockDevicePair, root: Path) -> None:
    """Give the devices the conformance SAEs, limits and a fixed number of frames."""
    for sae_id in MASTER_SAES + SLAVE_SAES:
        pair.ca.issue_sae_certificate(sae_id).save(root / "saes" / f"{sae_id}.crt", root / "saes" / f"{sae_id}.key")
    for end, own, other in (("KME-A", MASTER_SAES, SLAVE_SAES), ("KME-B", SLAVE_SAES, MASTER_SAES)):
        path = Path(pair.entries["mock_devices"][end]["config"])
        config = yaml.safe_load(path.read_text())
        config |= {"saes": [{"id": sae} for sae in own], "peer_saes": list(other), "limits": LIMITS,
                   "max_frames": FRAMES}
        path.write_text(yaml.safe_dump(config))


def _fed(pair: MockDevicePair) -> bool:
    states = [pair.control(end).get("state", extensions={"sni_hostname": pair.entries["mock_devices"][end]["name"]})
              .json()["feed"] for end in ("KME-A", "KME-B")]
    return all(not state["running"] and state["blocks"] > 0 for state in states)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    pair = MockDevicePair.write(root, "A-B", ("KME-A", "KME-B"))  # CA files in root/pki, as a node's layout
    _configure(pair, root)
    under_test = DevicePairUnderTest(pair, root)
    try:
        pair.start()
        wait_until(lambda: _fed(pair), f"both devices to run their {FRAMES} frames", 180, poll_s=0.5)
        yield under_test
    finally:
        under_test.close()
        pair.close()


def test_status_reports_every_field_of_the_device_pair(master) -> None:
    status = master.status("sae-2")
    assert STATUS_FIELDS <= set(status)
    assert (status["source_KME_ID"], status["target_KME_ID"]) == ("qkd-a-b-kme-a", "qkd-a-b-kme-b")
    assert (status["master_SAE_ID"], status["slave_SAE_ID"]) == ("sae-1", "sae-2")
    assert (status["key_size"], status["min_key_size"], status["max_key_size"]) == (256, 64, 8192)
    assert status["max_key_per_request"] == 16 and status["max_SAE_ID_count"] == 2 and status["stored_key_count"] > 0


def test_a_master_asking_its_own_device_for_a_key_held_at_the_peer_finds_none(master) -> None:
    (key,) = master.enc_keys("sae-2")
    assert_error(master.request("GET", "sae-1/dec_keys", params={"key_ID": key.key_id}), 400,
                 "one or more keys specified are not found on KME")
