"""Remembering what a device delivered, to refuse it a second time.

Key_IDs are kept as they are (they are public); material only as a keyed fingerprint
(HMAC-SHA256 under a per-process random key, 64 bits), so the memory reveals
nothing of the keys. Bounded: the oldest entries are forgotten first.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

from adapters.devices.errors import DeviceFault

DEFAULT_CAPACITY = 1 << 18


class SeenKeys:
    """The last ``capacity`` key_IDs and material fingerprints a device delivered."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self._capacity = capacity
        self._fingerprint_key = os.urandom(32)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def _fingerprint(self, material: bytes) -> str:
        return "m:" + hmac.new(self._fingerprint_key, material, hashlib.sha256).hexdigest()[:16]

    def admit(self, keys: Sequence[tuple[str, bytes]], operation: str) -> None:
        """Remember every (key_ID, material); DeviceFault ``repeated_key`` (remembering
        nothing) if any key_ID or material was delivered before or twice here."""
        entries = [(f"i:{key_id}", self._fingerprint(material)) for key_id, material in keys]
        with self._lock:
            fresh: dict[str, None] = {}
            for (key_id, fingerprint), (shown_id, _) in zip(entries, keys):
                if key_id in self._seen or key_id in fresh:
                    raise DeviceFault("repeated_key", f"the device delivered key_ID {shown_id} a second time "
                                                      f"({operation})")
                if fingerprint in self._seen or fingerprint in fresh:
                    raise DeviceFault("repeated_key", f"the device delivered key material it had delivered before, "
                                                      f"now under key_ID {shown_id} ({operation})")
                fresh |= {key_id: None, fingerprint: None}
            for entry in fresh:
                self._seen[entry] = None
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
