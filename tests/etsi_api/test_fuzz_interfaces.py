"""Schemathesis over the KM channel and SKIP documents against real nodes (the ETSI 014
document has its own module, test_schemathesis.py): generated valid and invalid
requests, every answer checked (tests/support/fuzzing.py): no 5xx but documented 503s,
status, content type and body as documented, failures as safe JSON errors.

Two nodes A-B joined by a simulated link. The KM channel is called by A's node
certificate at B; SKIP by an SAE of B. A sample runs here; benchmarks/fuzz_interfaces.py
sends >= 100,000 requests."""

from __future__ import annotations

import pytest

from tests.support.fuzzing import INTERFACES, check_conformance, fuzz_settings, mtls_session
from tests.support.network import FAST_LINK, LocalNetwork

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BY_NAME = {interface.name: interface for interface in INTERFACES}
KM, SKIP = BY_NAME["km"], BY_NAME["skip"]
km_schema, skip_schema = KM.schema(), SKIP.schema()
FUZZ = fuzz_settings(default_examples=25)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("fuzz"), {"A": ("sae-a",), "B": ("sae-b", "sae-b2")},
                           [("A", "B")], FAST_LINK)
    network.start()
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


@km_schema.parametrize()
@FUZZ
def test_the_km_channel_conforms_to_its_document(case, net, as_node_a):
    check_conformance(case, net.manifest["nodes"]["B"]["url"], KM, as_node_a)


@skip_schema.parametrize()
@FUZZ
def test_skip_conforms_to_its_document(case, net, as_sae_b):
    check_conformance(case, net.manifest["nodes"]["B"]["url"], SKIP, as_sae_b)
