"""Property-based conformance of the ETSI GS QKD 014 API with etsi_api/openapi.yaml.

Schemathesis generates requests for every operation of the document (valid and
invalid ones: explicit examples, coverage cases and random fuzzing) and sends them to
a real ``qkms serve`` process over mutual TLS, as SAE ``sae-a1``. For every response:

- no 5xx (a generated input must never make the node fail);
- status code, content type and body conform to the document;
- every non-200 has a JSON object body with a string ``message`` and no traceback.
"""

from __future__ import annotations


import pytest
from hypothesis import strategies as st

from tests.conftest import SingleNode
from tests.support.fuzzing import INTERFACES, check_conformance, fuzz_settings, mtls_session

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ETSI = next(interface for interface in INTERFACES if interface.name == "etsi014")
# The document's examples name these SAEs, so the explicit-example phase hits real ones.
CALLER, SAES = "sae-a1", ("sae-a1", "sae-c1", "sae-b1")

schema = ETSI.schema()


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the cases name an SAE the node knows, so success paths get exercised too."""
    known = st.sampled_from(SAES).map(lambda sae: {name: sae for name in path_parameters})
    return st.one_of(st.just(path_parameters), known)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = SingleNode(tmp_path_factory.mktemp("schemathesis"), SAES)
    node.process.start()
    yield node
    node.process.stop()


def sae_session(node, sae_id: str):
    sae = node.manifest["saes"][sae_id]
    return mtls_session(sae["cert"], sae["key"], node.manifest["ca"])


@pytest.fixture(scope="module")
def session(node):
    with sae_session(node, CALLER) as session:
        yield session


@pytest.fixture(scope="module")
def slave_session(node):
    with sae_session(node, "sae-c1") as session:
        yield session


@schema.parametrize()
@fuzz_settings(default_examples=40)
def test_etsi_api_conforms_to_its_openapi_document(case, node, session):
    check_conformance(case, node.url, ETSI, session)


# --- Methods the document does not define --------------------------------------------
# Schemathesis sends unsupported methods (PUT, PATCH, DELETE, TRACE, ...: all get 400 with
# an Error body, as they should), but not HEAD, which Flask adds to every GET route and
# answers by running the GET view. These pin the findings that came out of that.

ETSI_PATHS = ("keys/sae-c1/status", "keys/sae-c1/enc_keys", "keys/sae-a1/dec_keys")


def assert_refused_with_error(response):
    assert response.status_code == 400, (response.status_code, response.headers, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["message"], str)


def test_head_dec_keys_does_not_destroy_the_key(node, session, slave_session):
    api = f"{node.url}/api/v1/keys"
    key_id = session.post(f"{api}/sae-c1/enc_keys", json={"number": 1}, timeout=10).json()["keys"][0]["key_ID"]
    head = slave_session.head(f"{api}/sae-a1/dec_keys", params={"key_ID": key_id}, timeout=10)
    fetched = slave_session.get(f"{api}/sae-a1/dec_keys", params={"key_ID": key_id}, timeout=10)
    assert fetched.status_code == 200, (head.status_code, fetched.text)
    assert fetched.json()["keys"][0]["key_ID"] == key_id


def test_head_enc_keys_is_refused(node, session):
    response = session.head(f"{node.url}/api/v1/keys/sae-c1/enc_keys", params={"number": 3}, timeout=10)
    assert response.status_code == 400  # a HEAD answer carries no body


@pytest.mark.parametrize("path", ETSI_PATHS)
def test_options_is_refused_like_other_undefined_methods(node, session, path):
    assert_refused_with_error(session.options(f"{node.url}/api/v1/{path}", timeout=10))


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE"])
@pytest.mark.parametrize("path", ETSI_PATHS)
def test_other_undefined_methods_are_refused(node, session, path, method):
    assert_refused_with_error(session.request(method, f"{node.url}/api/v1/{path}", timeout=10))
