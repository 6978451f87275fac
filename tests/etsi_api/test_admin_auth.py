"""Who may use the admin API (etsi_api.auth.calling_admin): an admin certificate of a
name the node lists in ``admins``, and nothing else: no SAE, no node, no other name."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask

from etsi_api import errors
from etsi_api.auth import PEER_CERT_ENVIRON_KEY, calling_admin
from kms.config import parse_config
from kms.pki import CertificateAuthority

CONFIG = parse_config({"kme_id": "KME-1", "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"},
                       "kek": {"file": "k"}, "saes": [{"id": "sae-1"}], "admins": ["ops-1"]})


@pytest.fixture(scope="module")
def app_and_certs():
    ca = CertificateAuthority.create("test CA")
    der = {name: issued.certificate.public_bytes(serialization.Encoding.DER) for name, issued in {
        "ops-1": ca.issue_admin_certificate("ops-1"), "ops-2": ca.issue_admin_certificate("ops-2"),
        "sae-1": ca.issue_sae_certificate("sae-1"), "KME-1": ca.issue_node_certificate("KME-1")}.items()}
    app = Flask("admin-auth")
    app.config.update(QKMS_NODE_CONFIG=CONFIG)
    errors.init_app(app)
    app.add_url_rule("/whoami", "whoami", lambda: {"admin": calling_admin()})
    return app, der


@pytest.mark.parametrize("caller, status", [("ops-1", 200), ("ops-2", 401), ("sae-1", 401), ("KME-1", 401),
                                            (None, 401)])
def test_only_listed_administrators_pass(app_and_certs, caller, status) -> None:
    app, der = app_and_certs
    environ = {PEER_CERT_ENVIRON_KEY: der[caller]} if caller else {}
    response = app.test_client().get("/whoami", environ_base=environ)
    assert response.status_code == status
    if status == 200:
        assert response.get_json() == {"admin": "ops-1"}
    else:
        assert "administrator" in response.get_json()["message"]
