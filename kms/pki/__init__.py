"""The qkms PKI: a CA issuing node (KME) and SAE certificates, and SAE identification.

Every qkms interface is mutual TLS (DESIGN.md §8); this package makes the
certificates for it with the ``cryptography`` library alone, and maps a client
certificate to the SAE_ID it stands for (ETSI GS QKD 014 leaves the field to
configuration, DESIGN.md §3).

    ca = CertificateAuthority.create()
    ca.save("pki/ca.crt", "pki/ca.key")
    ca.issue_node_certificate("kme-a", hosts=["127.0.0.1", "kme-a.example"]).save(...)
    ca.issue_sae_certificate("sae-1").save("pki/sae-1.crt", "pki/sae-1.key")
    sae_identity_from_der(tls_socket.getpeercert(binary_form=True), "subject_cn")
"""

from kms.pki.authority import DEFAULT_NODE_HOSTS, CertificateAuthority, IssuedCertificate
from kms.pki.errors import PkiError
from kms.pki.files import read_certificate
from kms.pki.identity import (
    ADMIN_URN_PREFIX,
    IDENTITY_FIELDS,
    KME_URN_PREFIX,
    SAE_URN_PREFIX,
    admin_identity_from_der,
    certificate_names_from_der,
    format_serial,
    node_identity_from_der,
    sae_identity,
    sae_identity_from_der,
)
from kms.pki.keys import DEFAULT_KEY_TYPE, KEY_TYPES
from kms.pki.names import check_entity_id

__all__ = [
    "ADMIN_URN_PREFIX",
    "DEFAULT_KEY_TYPE",
    "DEFAULT_NODE_HOSTS",
    "IDENTITY_FIELDS",
    "KEY_TYPES",
    "KME_URN_PREFIX",
    "SAE_URN_PREFIX",
    "CertificateAuthority",
    "IssuedCertificate",
    "PkiError",
    "admin_identity_from_der",
    "certificate_names_from_der",
    "check_entity_id",
    "format_serial",
    "node_identity_from_der",
    "read_certificate",
    "sae_identity",
    "sae_identity_from_der",
]
