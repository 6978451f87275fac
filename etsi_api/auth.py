"""Who is calling: the SAE (or administrator) behind the TLS client certificate of this
request."""

from __future__ import annotations

from flask import current_app, request

from etsi_api.admission import admit
from kms.errors import Unauthorized
from kms.pki import admin_identity_from_der, sae_identity_from_der

#: WSGI environ key under which a server (or a test) may hand over the peer's DER certificate.
PEER_CERT_ENVIRON_KEY = "qkms.peer_cert_der"


def peer_certificate_der() -> bytes | None:
    """The DER client certificate of the current request's TLS connection, if any."""
    der = request.environ.get(PEER_CERT_ENVIRON_KEY)
    if der is not None:
        return der
    sock = request.environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    return getpeercert(binary_form=True) if getpeercert else None


def calling_sae() -> str:
    """The SAE_ID of the caller; Unauthorized if its certificate maps to no SAE, and a 503
    (etsi_api.admission) if the SAE is over its request rate or concurrency limit."""
    der = peer_certificate_der()
    if der is None:
        raise Unauthorized("a client certificate is required")
    service = current_app.extensions["qkms.service"]
    identity = sae_identity_from_der(der, current_app.config["QKMS_SAE_ID_FIELD"])
    sae_id = service.sae_for_identity(identity)
    if sae_id is None:
        raise Unauthorized("client certificate does not identify an SAE of this KME")
    admit(sae_id)
    return sae_id


def calling_admin() -> str:
    """The name of the calling administrator; Unauthorized unless the client certificate
    is an admin certificate (kms.pki.admin_identity_from_der) of a name this node lists
    in ``admins``. Checked before anything is read or changed."""
    der = peer_certificate_der()
    name = admin_identity_from_der(der) if der else None
    if name is None or name not in current_app.config["QKMS_NODE_CONFIG"].admins:
        raise Unauthorized("an administrator certificate of this node is required")
    return name
