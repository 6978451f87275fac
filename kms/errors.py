"""The one exception tree of qkms.

Every error carries a client-safe ``message`` (and optional ``details``) that may be
shown to a caller, and is mapped to a protocol status in exactly one place
(``etsi_api.errors``). Server-side context goes to the log, never into ``message``.
Nothing here may ever carry key material.
"""

from __future__ import annotations

from typing import Any


class QkmsError(Exception):
    """Root of all qkms domain errors."""

    message = "internal error"

    def __init__(self, message: str | None = None, details: list[dict[str, Any]] | None = None):
        self.message = message or self.message
        self.details = details or []
        super().__init__(self.message)


class BadRequest(QkmsError):
    """The request is malformed or asks for something the KME does not allow (400)."""

    message = "bad request"


class KeysNotFound(BadRequest):
    """One or more requested key_IDs are unknown to this KME (400, ETSI wording)."""

    message = "one or more keys specified are not found on KME"


class ExtensionNotSupported(BadRequest):
    """An ``extension_mandatory`` parameter is not supported (400, ETSI wording)."""

    message = "not all extension_mandatory parameters are supported"


class ExtensionOptionsNotMet(BadRequest):
    """A supported ``extension_mandatory`` option cannot be met (400, ETSI wording), e.g.
    ``qkms_require_qkd`` when no route to the slave carries QKD material now."""

    message = "not all extension_mandatory request options could be met"


class Unauthorized(QkmsError):
    """The caller is not entitled to what it asked for (401)."""

    message = "unauthorized"


class Unavailable(QkmsError):
    """The request cannot be served in full right now; nothing was consumed (503)."""

    message = "keys are not available"


class StoreFull(Unavailable):
    """The node already holds as many reservations as it may (``limits.max_key_count``)
    until slaves fetch theirs or they expire; nothing was stored (503)."""

    message = "this KME holds max_key_count keys waiting for their slaves"


class QuotaExceeded(Unavailable):
    """The master SAE already holds as many keys waiting for slaves, or has used as much
    link material lately, as its quota allows (``limits.sae_quota``); nothing was
    consumed. ETSI GS QKD 014 has no 429, so this is a 503 (with this message)."""

    message = "the SAE's quota is used up; fetch pending keys or retry later"


class RateLimited(Unavailable):
    """The SAE sent requests faster than ``limits.requests_per_s_per_sae`` allows (beyond
    its burst); nothing was done. ETSI GS QKD 014 has no 429, so this is a 503 (with this
    message and a Retry-After header)."""

    message = "too many requests from this SAE (limits.requests_per_s_per_sae); retry later"

    def __init__(self, message: str | None = None, details=None, retry_after_s: float = 1.0):
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class TooManyRequestsInProgress(Unavailable):
    """The SAE already has ``limits.concurrent_requests_per_sae`` requests in progress
    at this node; nothing was done (503, as RateLimited)."""

    message = "too many requests from this SAE in progress (limits.concurrent_requests_per_sae); retry later"


class Conflict(QkmsError):
    """A node-to-node request that can never succeed as sent (it already failed or was
    aborted, or the two ends' pools disagree): final, not worth retrying (KM 409)."""

    message = "request can never succeed as sent"


class ConfigError(QkmsError):
    """Configuration is invalid; ``message`` names the offending setting's path."""

    message = "invalid configuration"


class StoreError(QkmsError):
    """The key store failed or refused an operation."""

    message = "key store unavailable"


class DuplicateKeyId(StoreError):
    """A key_ID that is being stored already exists (never overwritten)."""

    message = "key_ID already exists"


class MissingExtra(QkmsError):
    """An optional feature needs a package that only one of qkms's extras installs."""

    def __init__(self, feature: str, module: str, extra: str):
        super().__init__(f"{feature} needs {module}: pip install 'qkms[{extra}]'")
        self.module = module
        self.extra = extra
