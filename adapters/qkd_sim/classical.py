"""The authenticated public channel between Alice and Bob, as counted disclosures.

Every parity Alice discloses during reconciliation is counted for its frame (in the
Cascade kernel's ``_ask``); the per-frame totals land here and are lambda_EC in the
secret-length bound.  Parities Bob can infer for free (padding, complements of known
parities) are never counted because they never cross the channel.
"""

from __future__ import annotations

import numpy as np


class PublicChannel:
    """Disclosed bits per frame."""

    def __init__(self, n_frames: int):
        self.leaked_bits = np.zeros(n_frames, np.int64)

    def record(self, bits_per_frame: np.ndarray) -> None:
        """Add bits disclosed in each frame."""
        self.leaked_bits += bits_per_frame
