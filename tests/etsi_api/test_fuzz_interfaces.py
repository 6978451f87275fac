"""Schemathesis over the KM channel, SKIP and admin documents against real nodes (the
ETSI 014 document has its own module, test_schemathesis.py): generated valid and
invalid requests, every answer checked (tests/support/fuzzing.py): no 5xx but
documented 503s, status, content type and body as documented, failures as safe JSON
errors.

Two nodes A-B joined by a simulated link. The KM channel is called by A's node
certificate at B; SKIP by an SAE of B. The admin API is called at A with the
manifest's admin certificate, on a network of its own: the changes it accepts (a link
paused or its pools destroyed, SAEs removed, nodes and links added, an eavesdropper)
are real and would starve the other interfaces of keys. A sample runs here;
benchmarks/fuzz_interfaces.py sends >= 100,000 requests."""

from __future__ import annotations

import pytest

from tests.support.fuzzing import INTERFACES, check_conformance, fuzz_settings, mtls_session
from tests.support.network import FAST_LINK, LocalNetwork

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BY_NAME = {interface.name: interface for interface in INTERFACES}
KM, SKIP, ADMIN = BY_NAME["km"], BY_NAME["skip"], BY_NAME["admin"]
km_schema, skip_schema, admin_schema = KM.schema(), SKIP.schema(), ADMIN.schema()
FUZZ = fuzz_settings(default_examples=25)


def started_network(root) -> LocalNetwork:
    network = LocalNetwork(root, {"A": ("sae-a",), "B": ("sae-b", "sae-b2")}, [("A", "B")], FAST_LINK)
    network.start()
    return network


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = started_network(tmp_path_factory.mktemp("fuzz"))
    yield network
    network.close()


@pytest.fixture(scope="module")
def admin_net(tmp_path_factory):
    network = started_network(tmp_path_factory.mktemp("fuzz-admin"))
    yield network
    network.close()


@pytest.fixture(scope="module")
def as_node_a(net):
    node_dir = net.root / "nodes" / "A"
    with mtls_session(node_dir / "node.crt", node_dir / "node.key", net.manifest["ca"]) as session:
        yield session


@pytest.fixture(scope="module")
def as_sae_b(net):
    sae = net.manifest["saes"]["sae-b"]
    with mtls_session(sae["cert"], sae["key"], net.manifest["ca"]) as session:
        yield session


@pytest.fixture(scope="module")
def as_admin(admin_net):
    admin = admin_net.manifest["admin"]
    with mtls_session(admin["cert"], admin["key"], admin_net.manifest["ca"]) as session:
        yield session


@km_schema.parametrize()
@FUZZ
def test_the_km_channel_conforms_to_its_document(case, net, as_node_a):
    check_conformance(case, net.manifest["nodes"]["B"]["url"], KM, as_node_a)


@skip_schema.parametrize()
@FUZZ
def test_skip_conforms_to_its_document(case, net, as_sae_b):
    check_conformance(case, net.manifest["nodes"]["B"]["url"], SKIP, as_sae_b)


@admin_schema.parametrize()
@FUZZ
def test_the_admin_api_conforms_to_its_document(case, admin_net, as_admin):
    check_conformance(case, admin_net.manifest["nodes"]["A"]["url"], ADMIN, as_admin)
