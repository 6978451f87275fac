"""ETSI GS QKD 014 against a real node process over mutual TLS: every endpoint, both
GET and POST forms, and every error path (DESIGN.md section 3)."""

from __future__ import annotations

import base64
import ssl
import uuid
import warnings

import httpx
import pytest

from adapters.etsi014_client import Etsi014Error, client_tls_context
from kms.pki import CertificateAuthority
from tests.conftest import SingleNode

pytestmark = pytest.mark.integration

STATUS_FIELDS = {"source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID", "key_size",
                 "stored_key_count", "max_key_count", "max_key_per_request", "max_key_size",
                 "min_key_size", "max_SAE_ID_count"}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = SingleNode(tmp_path_factory.mktemp("api"), ("sae-1", "sae-2", "sae-3", "sae-4"),
                      {"limits": {"max_sae_id_count": 2, "max_keys_per_request": 16}})
    node.process.start()
    yield node
    node.close_clients()
    node.process.stop()


@pytest.fixture(scope="module")
def master(node):
    return node.client("sae-1")


@pytest.fixture(scope="module")
def slave(node):
    return node.client("sae-2")


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict:
    # A failure shows error bodies only: a 200 body would put key material in the test output.
    assert response.status_code == status, response.text if response.status_code >= 400 else response.status_code
    body = response.json()
    assert set(body) <= {"message", "details"} and isinstance(body["message"], str)
    if message is not None:
        assert body["message"] == message
    assert "Traceback" not in response.text
    return body


def test_status_reports_every_field(master):
    status = master.status("sae-2")
    assert STATUS_FIELDS <= set(status)
    assert status["source_KME_ID"] == status["target_KME_ID"] == "KME-1"
    assert (status["master_SAE_ID"], status["slave_SAE_ID"]) == ("sae-1", "sae-2")
    assert (status["key_size"], status["min_key_size"], status["max_key_size"]) == (256, 64, 8192)
    assert status["max_key_per_request"] == 16 and status["max_SAE_ID_count"] == 2
    assert all(isinstance(status[f], int) for f in STATUS_FIELDS if not f.endswith("_ID"))


@pytest.mark.parametrize("use_get", [False, True])
def test_enc_then_dec_delivers_the_same_keys_once(master, slave, use_get):
    keys = master.enc_keys("sae-2", number=3, size_bits=512, use_get=use_get)
    assert len(keys) == 3 and all(len(k.material) == 64 for k in keys)
    assert len({uuid.UUID(k.key_id) for k in keys}) == 3
    fetched = slave.dec_keys("sae-1", [k.key_id for k in keys])
    assert [(k.key_id, k.material) for k in fetched] == [(k.key_id, k.material) for k in keys]
    with pytest.raises(Etsi014Error) as again:
        slave.dec_keys("sae-1", [keys[0].key_id])
    assert again.value.status == 400


def test_get_dec_keys_single_id(master, slave):
    (key,) = master.enc_keys("sae-2")
    assert len(key.material) == 32  # default key_size 256 bits
    (fetched,) = slave.dec_keys("sae-1", [key.key_id], use_get=True)
    assert fetched.material == key.material


def test_key_container_wire_format(master, slave):
    response = master.request("POST", "sae-2/enc_keys", json={"number": 1, "size": 64})
    body = response.json()
    assert set(body) == {"keys"} and len(body["keys"]) == 1
    entry = body["keys"][0]
    assert str(uuid.UUID(entry["key_ID"])) == entry["key_ID"]
    assert len(base64.b64decode(entry["key"], validate=True)) == 8 and entry["key"].endswith("=")
    assert entry["key_extension"]["qkms_provenance"]["sources"] == ["csprng"]
    slave.dec_keys("sae-1", [entry["key_ID"]])


def test_multicast_each_slave_fetches_once(node, master, slave):
    other = node.client("sae-3")
    keys = master.enc_keys("sae-2", number=2, additional_slaves=["sae-3"])
    ids = [k.key_id for k in keys]
    assert [k.material for k in slave.dec_keys("sae-1", ids)] == [k.material for k in keys]
    assert [k.material for k in other.dec_keys("sae-1", ids)] == [k.material for k in keys]
    for client in (slave, other):
        with pytest.raises(Etsi014Error):
            client.dec_keys("sae-1", ids)


def test_non_slave_gets_401_and_consumes_nothing(node, master, slave):
    intruder = node.client("sae-4")
    (key,) = master.enc_keys("sae-2")
    response = intruder.request("POST", "sae-1/dec_keys", json={"key_IDs": [{"key_ID": key.key_id}]})
    assert response.status_code == 401
    assert slave.dec_keys("sae-1", [key.key_id])[0].material == key.material


def test_master_cannot_fetch_its_own_keys_as_slave(master):
    (key,) = master.enc_keys("sae-2")
    assert master.request("GET", "sae-1/dec_keys", params={"key_ID": key.key_id}).status_code == 401


def test_mixed_known_and_unknown_ids_is_400_and_consumes_nothing(master, slave):
    (key,) = master.enc_keys("sae-2")
    response = slave.request("POST", "sae-1/dec_keys",
                             json={"key_IDs": [{"key_ID": key.key_id}, {"key_ID": str(uuid.uuid4())}]})
    assert_error(response, 400, "one or more keys specified are not found on KME")
    assert slave.dec_keys("sae-1", [key.key_id])[0].material == key.material


def test_wrong_master_in_path_finds_nothing(master, slave):
    (key,) = master.enc_keys("sae-2")
    response = slave.request("GET", "sae-3/dec_keys", params={"key_ID": key.key_id})
    assert_error(response, 400, "one or more keys specified are not found on KME")
    assert slave.dec_keys("sae-1", [key.key_id])


@pytest.mark.parametrize("body, message", [
    ({"size": 100}, "size shall be a multiple of 8"),
    ({"extension_mandatory": [{"vendor_x": True}]}, "not all extension_mandatory parameters are supported"),
    ({"number": 0}, None), ({"number": -3}, None), ({"number": 10**12}, None), ({"number": 17}, None),
    ({"number": "2"}, None), ({"number": 1.5}, None), ({"number": True}, None), ({"size": 8}, None),
    ({"size": 1 << 20}, None), ({"additional_slave_SAE_IDs": "sae-3"}, None),
    ({"additional_slave_SAE_IDs": ["sae-3", "sae-4", "sae-1"]}, None),
    ({"additional_slave_SAE_IDs": ["nobody"]}, None), ({"additional_slave_SAE_IDs": ["sae-2"]}, None),
    ({"extension_optional": "x"}, None), ({"colour": "blue"}, None),
])
def test_bad_enc_keys_body_is_400(master, body, message):
    assert_error(master.request("POST", "sae-2/enc_keys", json=body), 400, message)


def test_optional_extensions_are_ignored(master, slave):
    response = master.request("POST", "sae-2/enc_keys", json={"extension_optional": [{"vendor_y": 1}]})
    assert response.status_code == 200
    slave.dec_keys("sae-1", [response.json()["keys"][0]["key_ID"]])


@pytest.mark.parametrize("content", [b"{", b"[]", b"\xff\xfe", b'"x"', b"null"])
def test_malformed_json_is_400(master, content):
    response = master.request("POST", "sae-2/enc_keys", content=content,
                              headers={"Content-Type": "application/json"})
    assert_error(response, 400)


JSON_EDGES = {
    "number of 5000 digits": (b'{"number": ' + b"9" * 5000 + b"}",
                              "request body holds a number of more than 64 digits"),
    "nesting 30000 deep": (b'{"extension_optional": [' + b"[" * 30000 + b"]" * 30000 + b"]}",
                           "request body nests too deeply"),
    "duplicate key": (b'{"number": 1, "number": 2}', "duplicate key in request body: number"),
}


@pytest.mark.parametrize("content, message", JSON_EDGES.values(), ids=JSON_EDGES.keys())
def test_json_edges_are_400_and_change_nothing(master, content, message):
    before = master.status("sae-2")["stored_key_count"]
    response = master.request("POST", "sae-2/enc_keys", content=content, headers={"Content-Type": "application/json"})
    assert_error(response, 400, message)
    assert master.status("sae-2")["stored_key_count"] == before


def test_duplicate_key_in_dec_keys_is_400_and_consumes_nothing(master, slave):
    first, second = master.enc_keys("sae-2", number=2)
    content = '{"key_IDs": [{"key_ID": "%s"}], "key_IDs": [{"key_ID": "%s"}]}' % (first.key_id, second.key_id)
    response = slave.request("POST", "sae-1/dec_keys", content=content, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "duplicate key in request body: key_IDs")
    assert len(slave.dec_keys("sae-1", [first.key_id, second.key_id])) == 2


def test_oversized_body_is_400_and_the_connection_stays_usable(master):
    response = master.request("POST", "sae-2/enc_keys", content=b"{" + b" " * 70000 + b"}",
                              headers={"Content-Type": "application/json"})
    assert_error(response, 400, "request body too large")
    assert master.request("GET", "sae-2/status").status_code == 200


@pytest.mark.parametrize("params", [{"number": "x"}, {"number": "-1"}, {"size": "12"}, {"colour": "1"},
                                    {"number": ["1", "2"]}])
def test_bad_enc_keys_query_is_400(master, params):
    assert_error(master.request("GET", "sae-2/enc_keys", params=params), 400)


@pytest.mark.parametrize("body", [{}, {"key_IDs": []}, {"key_IDs": "x"}, {"key_IDs": [{"key_ID": "not-a-uuid"}]},
                                  {"key_IDs": [{"key_ID": 5}]}, {"key_IDs": [{}]}, {"key_IDs": ["x"]},
                                  {"key_IDs": [{"key_ID": str(uuid.UUID(int=1)), "extra": 1}]}])
def test_bad_dec_keys_body_is_400(slave, body):
    assert_error(slave.request("POST", "sae-1/dec_keys", json=body), 400)


def test_repeated_key_id_is_400_and_consumes_nothing(master, slave):
    (key,) = master.enc_keys("sae-2")
    body = {"key_IDs": [{"key_ID": key.key_id}, {"key_ID": key.key_id.upper()}]}
    assert_error(slave.request("POST", "sae-1/dec_keys", json=body), 400)
    assert slave.dec_keys("sae-1", [key.key_id])


@pytest.mark.parametrize("params", [{}, {"key_ID": "nope"}, {"key_ID": str(uuid.uuid4()), "number": "1"}])
def test_bad_dec_keys_query_is_400(slave, params):
    assert_error(slave.request("GET", "sae-1/dec_keys", params=params), 400)


def test_unknown_slave_is_400(master):
    assert_error(master.request("GET", "nobody/status"), 400)
    assert_error(master.request("POST", "nobody/enc_keys", json={}), 400)


def test_url_encoded_sae_ids(node, master, slave):
    (key,) = master.enc_keys("sae-2")
    response = slave.request("GET", "sae%2D1/dec_keys", params={"key_ID": key.key_id})
    assert response.status_code == 200 and response.json()["keys"][0]["key_ID"] == key.key_id


def test_unknown_route_and_method_are_400(master):
    assert_error(master.request("DELETE", "sae-2/enc_keys"), 400)
    assert_error(master.request("GET", "sae-2/something"), 400)


def test_certificate_of_unknown_sae_is_401(node, tmp_path):
    ca = CertificateAuthority.load(node.root / "pki" / "ca.crt", node.root / "pki" / "ca.key")
    ca.issue_sae_certificate("stranger").save(tmp_path / "s.crt", tmp_path / "s.key")
    with httpx.Client(verify=client_tls_context(node.manifest["ca"], tmp_path / "s.crt", tmp_path / "s.key")) as client:
        response = client.get(f"{node.url}/api/v1/keys/sae-2/status")
    assert response.status_code == 401


def test_client_without_certificate_is_refused(node):
    with httpx.Client(verify=ssl.create_default_context(cafile=node.manifest["ca"])) as client:
        with pytest.raises(httpx.HTTPError):
            client.get(f"{node.url}/api/v1/keys/sae-2/status")


def test_certificate_from_another_ca_is_refused(node, tmp_path):
    rogue = CertificateAuthority.create("rogue CA")
    rogue.issue_sae_certificate("sae-1").save(tmp_path / "r.crt", tmp_path / "r.key")
    with httpx.Client(verify=client_tls_context(node.manifest["ca"], tmp_path / "r.crt", tmp_path / "r.key")) as client:
        with pytest.raises(httpx.HTTPError):
            client.get(f"{node.url}/api/v1/keys/sae-2/status")


def test_tls_below_1_2_is_refused(node):
    context = ssl.create_default_context(cafile=node.manifest["ca"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with httpx.Client(verify=context) as client, pytest.raises(httpx.HTTPError):
        client.get(f"{node.url}/api/v1/keys/sae-2/status")


def test_openapi_document_is_served(master, node):
    response = master.request("GET", f"{node.url}/api/v1/openapi.yaml")
    assert response.status_code == 200 and "openapi:" in response.text and "enc_keys" in response.text


def test_healthz_and_status_show_a_node_without_links_has_no_link_manager(master, node):
    response = master.request("GET", f"{node.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"store": "up", "link_manager": {
        "state": "absent", "pid": None, "restarts": 0, "last_exit_code": None, "backoff_s": None,
        "heartbeat_age_s": None}}
    assert master.status("sae-2")["status_extension"]["qkms_link_manager"]["state"] == "absent"


def test_connection_is_reused(master):
    for _ in range(5):
        master.status("sae-2")
    pool = master._http._transport._pool
    assert len(pool.connections) == 1


def test_full_node_answers_503_and_stores_nothing(make_node):
    """limits.max_key_count bounds the keys held for slaves; status counts down from it."""
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"limits": {"max_key_count": 4}})
    master, slave = node.client("sae-1"), node.client("sae-2")
    assert master.status("sae-2")["stored_key_count"] == 4
    first = master.enc_keys("sae-2", number=3)
    assert master.status("sae-2")["stored_key_count"] == 1
    response = master.request("POST", f"{node.url}/api/v1/keys/sae-2/enc_keys", json={"number": 2})
    assert_error(response, 503, "this KME holds max_key_count keys waiting for their slaves")
    assert master.status("sae-2")["stored_key_count"] == 1
    assert [k.key_id for k in slave.dec_keys("sae-1", [k.key_id for k in first])] == [k.key_id for k in first]
    assert master.status("sae-2")["stored_key_count"] == 4
    assert len(master.enc_keys("sae-2", number=4)) == 4
