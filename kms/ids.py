"""The one grammar of KME_IDs, SAE_IDs and link ids, shared by configuration and PKI.

An ID becomes a certificate common name (X.509 allows at most 64 characters), part
of a URN (``urn:qkms:kme:<KME_ID>``), a file name and a path segment of the ETSI
URLs, so path separators, spaces, ``@`` (``--sae ID@NODE``) and URN-reserved
characters are out.
"""

from __future__ import annotations

import re

ENTITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ENTITY_ID_RULE = "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

_ENTITY_ID = re.compile(ENTITY_ID_PATTERN)


def is_entity_id(value: object) -> bool:
    """True if ``value`` may name a KME, an SAE or a link."""
    return isinstance(value, str) and _ENTITY_ID.fullmatch(value) is not None
