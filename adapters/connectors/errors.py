"""The connectors' error (standard library only: the Python 3.13 TLS helper imports it)."""

from __future__ import annotations

from kms.errors import QkmsError


class ConnectorError(QkmsError):
    """A connector could not get, agree on or install a key; it fails closed."""

    message = "connector failed"
