"""Checks on the names that go into certificates: entity IDs and host names."""

import ipaddress
import re

from cryptography import x509

from kms.ids import ENTITY_ID_RULE, is_entity_id
from kms.pki.errors import PkiError

_DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_MAX_DNS_NAME_LENGTH = 253


def check_entity_id(entity_id: str, kind: str = "ID") -> str:
    """Return ``entity_id`` if it can name a KME or SAE, else raise PkiError.

    The grammar is :mod:`kms.ids`, the same as configuration's. ``kind`` (e.g.
    "KME_ID") only words the error message.
    """
    if not is_entity_id(entity_id):
        raise PkiError(f"{kind} {entity_id!r} is not valid: {ENTITY_ID_RULE}")
    return entity_id


def is_dns_name(name: str) -> bool:
    """Tell whether ``name`` is a sequence of DNS labels (letters, digits, hyphens)."""
    return len(name) <= _MAX_DNS_NAME_LENGTH and all(
        _DNS_LABEL.fullmatch(label) for label in name.split(".")
    )


def host_general_name(host: str) -> x509.GeneralName:
    """Map a host to a SAN entry: an IP address literal or else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if is_dns_name(host):
        return x509.DNSName(host)
    raise PkiError(f"host {host!r} is neither an IP address nor a DNS name")
