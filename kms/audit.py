"""Structured audit trail: who received which key_ID. Never key material."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

_audit = logging.getLogger("qkms.audit")


def record(event: str, sae_id: str, key_ids: Sequence[str], **fields: object) -> None:
    """Log one audit event as a JSON object on the ``qkms.audit`` logger."""
    if _audit.isEnabledFor(logging.INFO):
        entry = {"event": event, "sae": sae_id, "key_IDs": list(key_ids), **fields}
        _audit.info(json.dumps(entry, sort_keys=True))
