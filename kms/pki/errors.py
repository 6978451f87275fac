"""The one exception of the PKI package."""

from kms.errors import QkmsError


class PkiError(QkmsError):
    """A certificate, key or name cannot be used, created or read.

    Messages name the offending file, name or setting; they never contain key
    material.
    """

    message = "certificate error"
