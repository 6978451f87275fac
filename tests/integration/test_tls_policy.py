"""The node's one HTTPS port (ETSI 014, KM channel, SKIP) and the connector agents'
channel, probed with real TLS clients (Python's ssl and ``openssl s_client``): TLS 1.2+
with forward-secret AEAD suites only, a client certificate required."""

from __future__ import annotations

import ssl

import pytest

from adapters.connectors.channel import STATUS_PATH, ChannelServer, SaeCredentials
from kms.pki import CertificateAuthority
from tests.conftest import SingleNode
from tests.support.tls_probes import Outcome, python_client, s_client

pytestmark = pytest.mark.integration

TLS11 = (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1)
TLS12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
TLS13 = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
#: TLS 1.2 suites an ECDSA server could negotiate that the policy refuses: CBC with
#: ECDHE, and (for the record) suites without forward secrecy or with finite-field DHE.
WEAK_TLS12_SUITES = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256",
                     "DHE-RSA-AES128-GCM-SHA256"]
STRONG_TLS12_SUITES = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                       "ECDHE-ECDSA-CHACHA20-POLY1305"]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = SingleNode(tmp_path_factory.mktemp("tls"), ("sae-1", "sae-2"))
    node.process.start()
    yield node
    node.process.stop()


def port(node: SingleNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


def sae(node: SingleNode, sae_id: str = "sae-1") -> dict:
    entry = node.manifest["saes"][sae_id]
    return {"cert": entry["cert"], "key": entry["key"]}


def assert_answered(outcome: Outcome) -> None:
    assert outcome.answer == "HTTP/1.1 200 OK", outcome.error


def assert_refused(outcome: Outcome, *reasons: str) -> None:
    assert outcome.refused, f"the server answered {outcome.answer} ({outcome.version}, {outcome.cipher})"
    assert any(reason in outcome.error for reason in reasons), outcome.error


@pytest.mark.parametrize("versions", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_tls12_and_13_with_a_certificate_are_served(node, versions) -> None:
    outcome = python_client(port(node), node.manifest["ca"], **sae(node), versions=versions)
    assert_answered(outcome)
    assert outcome.version == {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}[versions]


@pytest.mark.parametrize("suite", STRONG_TLS12_SUITES)
def test_strong_tls12_suites_are_served(node, suite: str) -> None:
    outcome = python_client(port(node), node.manifest["ca"], **sae(node), versions=TLS12, ciphers=suite)
    assert_answered(outcome)
    assert outcome.cipher == suite


def test_tls11_is_refused_by_the_server(node) -> None:
    outcome = python_client(port(node), node.manifest["ca"], **sae(node), versions=TLS11)
    assert_refused(outcome, "PROTOCOL_VERSION", "protocol version")


@pytest.mark.parametrize("suite", WEAK_TLS12_SUITES)
def test_weak_tls12_suites_are_refused(node, suite: str) -> None:
    outcome = python_client(port(node), node.manifest["ca"], **sae(node), versions=TLS12, ciphers=suite)
    assert_refused(outcome, "HANDSHAKE_FAILURE", "handshake failure")


@pytest.mark.parametrize("versions", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_a_client_without_a_certificate_is_refused(node, versions) -> None:
    outcome = python_client(port(node), node.manifest["ca"], versions=versions)
    assert_refused(outcome, "CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "closed without an answer",
                   "ConnectionResetError", "EOF")


def test_a_certificate_of_another_ca_is_refused(node, tmp_path) -> None:
    stranger = CertificateAuthority.create("another CA").issue_sae_certificate("sae-1")
    stranger.save(tmp_path / "s.crt", tmp_path / "s.key")
    outcome = python_client(port(node), node.manifest["ca"], tmp_path / "s.crt", tmp_path / "s.key", versions=TLS13)
    assert_refused(outcome, "UNKNOWN_CA", "unknown ca", "closed without an answer", "EOF")


# --- the same with openssl s_client -------------------------------------------------------


def test_s_client_with_a_certificate_is_served(node) -> None:
    assert_answered(s_client(port(node), node.manifest["ca"], "-tls1_2", **sae(node)))


def test_s_client_tls11_is_refused(node) -> None:
    outcome = s_client(port(node), node.manifest["ca"], "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", **sae(node))
    assert_refused(outcome, "alert protocol version")


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA"])
def test_s_client_cbc_suites_are_refused(node, suite: str) -> None:
    outcome = s_client(port(node), node.manifest["ca"], "-tls1_2", "-cipher", f"{suite}@SECLEVEL=0", **sae(node))
    assert_refused(outcome, "alert handshake failure")


def test_s_client_without_a_certificate_is_refused(node) -> None:
    outcome = s_client(port(node), node.manifest["ca"], "-tls1_3")
    assert_refused(outcome, "alert certificate required")


# --- the connector agents' channel --------------------------------------------------------


@pytest.fixture
def agent_channel(tmp_path):
    ca = CertificateAuthority.create()
    ca.save(tmp_path / "ca.crt", tmp_path / "ca.key")
    for sae_id in ("gw-a", "gw-c"):
        ca.issue_sae_certificate(sae_id).save(tmp_path / f"{sae_id}.crt", tmp_path / f"{sae_id}.key")
    credentials = SaeCredentials(tmp_path / "gw-c.crt", tmp_path / "gw-c.key", tmp_path / "ca.crt")
    server = ChannelServer(("127.0.0.1", 0), credentials, "gw-a", {}, lambda: {"state": "fail-closed"})
    server.start()
    yield server.address[1], tmp_path
    server.stop()


def test_the_agent_channel_applies_the_same_policy(agent_channel) -> None:
    channel_port, pki = agent_channel
    ca, cert = pki / "ca.crt", {"cert": pki / "gw-a.crt", "key": pki / "gw-a.key", "verify_server": False}
    served = python_client(channel_port, ca, **cert, versions=TLS12)
    assert served.answer == "HTTP/1.1 404 Not Found", served.error  # served (it knows no /healthz)
    assert_refused(python_client(channel_port, ca, **cert, versions=TLS11), "PROTOCOL_VERSION")
    assert_refused(python_client(channel_port, ca, **cert, versions=TLS12, ciphers="ECDHE-ECDSA-AES128-SHA"),
                   "HANDSHAKE_FAILURE")
    assert_refused(python_client(channel_port, ca, versions=TLS13, verify_server=False), "CERTIFICATE_REQUIRED", "EOF",
                   "closed without an answer", "ConnectionResetError")
    assert STATUS_PATH.startswith("/connect/")
