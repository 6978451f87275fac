"""One in-process "server" for the in-memory stores: named tables, one lock, a clock.

Two stores opened on the same database see the same data, as two connections to one
Redis do; a test can swap ``clock`` to move time without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class MemoryDatabase:
    """Tables by name, guarded by one re-entrant lock."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.lock = threading.RLock()
        self.clock = clock
        self._tables: dict[str, dict[str, Any]] = {}

    def namespace(self, name: str) -> dict[str, Any]:
        """The table called ``name`` (created empty on first use)."""
        with self.lock:
            return self._tables.setdefault(name, {})
