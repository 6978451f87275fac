"""Exceptions raised by the simulated QKD link.

A branch of qkms's one exception tree: callers catch :class:`QkdSimError` (or
``QkmsError``); bad configuration is also a ``ValueError`` so generic validation code
treats it as such.
"""

from kms.errors import QkmsError


class QkdSimError(QkmsError):
    """Base class of every error raised by ``adapters.qkd_sim``."""


class InvalidLinkParams(QkdSimError, ValueError):
    """A link parameter is out of its physical or protocol range.

    The message names the offending field, e.g. ``"mu: must be > nu (got 0.1)"``.
    """
