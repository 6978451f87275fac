"""GET /healthz (etsi_api/meta_api.py): the store and the link manager, 503 when either
is down; here with stand-ins for the store and the service, over Flask's test client."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask

from etsi_api import errors, meta_api
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.errors import StoreError
from kms.link_manager_state import LinkManagerStatus
from kms.pki import CertificateAuthority


@pytest.fixture(scope="module")
def sae_der():
    ca = CertificateAuthority.create("test CA")
    return ca.issue_sae_certificate("sae-1").certificate.public_bytes(serialization.Encoding.DER)


def healthz(sae_der, store_up: bool, link_manager):
    def status():
        if isinstance(link_manager, Exception):
            raise link_manager
        return link_manager

    app = Flask("meta-test")
    app.config.update(QKMS_SAE_ID_FIELD="subject_cn")
    app.extensions["qkms.store"] = SimpleNamespace(ping=lambda: store_up)
    app.extensions["qkms.service"] = SimpleNamespace(sae_for_identity=lambda i: i if i == "sae-1" else None,
                                                     link_manager_status=status)
    errors.init_app(app)
    app.register_blueprint(meta_api.bp)
    return app.test_client().get("/healthz", environ_base={PEER_CERT_ENVIRON_KEY: sae_der})


@pytest.mark.parametrize("store_up, link_manager, code", [
    (True, LinkManagerStatus("absent"), 200),
    (True, LinkManagerStatus("running", 42, heartbeat_age_s=0.3), 200),
    (True, LinkManagerStatus("starting", 42), 200),
    (True, LinkManagerStatus("stale", 42), 503),
    (True, LinkManagerStatus("restarting", 42, 1, -9, 0.5), 503),
    (True, LinkManagerStatus("stopped"), 503),
    (False, LinkManagerStatus("absent"), 503),
])
def test_healthz_reports_store_and_link_manager(sae_der, store_up, link_manager, code):
    response = healthz(sae_der, store_up, link_manager)
    assert response.status_code == code
    assert response.get_json() == {"store": "up" if store_up else "down", "link_manager": link_manager.to_dict()}


def test_healthz_with_an_unreadable_link_manager_state_is_503(sae_der):
    response = healthz(sae_der, False, StoreError())
    assert response.status_code == 503
    assert response.get_json() == {"store": "down", "link_manager": {"state": "unknown"}}


def test_healthz_needs_an_sae_certificate():
    app = Flask("meta-test")
    app.config.update(QKMS_SAE_ID_FIELD="subject_cn")
    errors.init_app(app)
    app.register_blueprint(meta_api.bp)
    assert app.test_client().get("/healthz").status_code == 401
