"""The authenticated public channel between Alice and Bob, as counted messages.

Everything Alice discloses during reconciliation goes through :meth:`disclose`, which
counts one leaked bit per parity per frame; that count is lambda_EC in the
secret-length bound.  Parities Bob can infer for free (padding, complements of known
parities) never pass through here.
"""

from __future__ import annotations

import numpy as np


class PublicChannel:
    """Counts disclosed bits per frame and the number of messages exchanged."""

    def __init__(self, n_frames: int):
        self.leaked_bits = np.zeros(n_frames, np.int64)
        self.messages = 0

    def disclose(self, frames: np.ndarray, parities: np.ndarray) -> np.ndarray:
        """Carry ``parities`` (one per entry of ``frames``) from Alice to Bob."""
        self.leaked_bits += np.bincount(frames, minlength=self.leaked_bits.size)
        self.messages += 1
        return parities.copy()
