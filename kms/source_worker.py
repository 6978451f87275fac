"""The background thread of a key source that produces on its own (a simulated link's
frames, ML-KEM exchanges, a device end's polling): started at most once at a time,
asked to stop through an event its loop waits on, joined with a deadline."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("qkms.sources")


class SourceWorker:
    """One daemon thread named ``name``; its loop runs while ``stopping`` is not set."""

    def __init__(self, name: str, join_s: float):
        self.stopping = threading.Event()
        self._name = name
        self._join_s = join_s
        self._thread: threading.Thread | None = None

    def start(self, target: Callable[[], None]) -> None:
        """Run ``target`` in the thread, unless the thread still runs (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.stopping.clear()
        self._thread = threading.Thread(target=target, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Set ``stopping`` and wait up to ``join_s`` for the thread to end (logged if it
        does not; being a daemon it cannot hold the process); idempotent."""
        self.stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self._join_s)
            if thread.is_alive():
                log.error("%s did not stop within %.0f s", self._name, self._join_s)
