"""Structured audit trail: who received which key_ID, every admin change, every
eavesdropping alarm. Never key material.

Entries are JSON objects on the ``qkms.audit`` logger, one per line, each with the
``event``, the ``time`` (UTC, ISO 8601) and the fields of its kind; every process of
a node writes them to the node's audit file (qkms/audit_log.py). Callers pass IDs,
names, routes and provenance only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timezone

_audit = logging.getLogger("qkms.audit")


def event(name: str, **fields: object) -> None:
    """Log one audit entry ``name`` with ``fields`` (JSON-serialisable, never key material)."""
    if _audit.isEnabledFor(logging.INFO):
        entry = {"event": name, "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"), **fields}
        _audit.info(json.dumps(entry, sort_keys=True, default=str))


def record(name: str, sae_id: str, key_ids: Sequence[str], **fields: object) -> None:
    """Log one key event (``enc_keys``, ``dec_keys``, ``relay``, ``abort``) about
    ``key_ids`` for SAE ``sae_id``."""
    event(name, sae=sae_id, key_IDs=list(key_ids), **fields)
