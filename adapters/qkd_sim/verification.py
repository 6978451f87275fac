"""Error verification: compare short Toeplitz tags of Alice's and Bob's frames.

After reconciliation Alice draws a fresh public Toeplitz seed and sends the tag of
each frame; Bob compares with the tag of his corrected frame and both discard frames
whose tags differ.  For two different frames the tags collide with probability
2^-t (see :mod:`adapters.qkd_sim.toeplitz`), so with t = ceil(log2(frames/eps_cor))
the union bound over all frames gives eps_cor-correctness (Lim et al., PRA 89,
022307 (2014), Sec. II; Tomamichel et al., Nat. Commun. 3, 634 (2012)).
The t tag bits per frame are disclosed and counted as leaked.
"""

from __future__ import annotations

import math

import numpy as np

from adapters.qkd_sim.toeplitz import PackedToeplitz


def tag_bits(n_frames: int, eps_cor: float) -> int:
    """t = ceil(log2(n_frames / eps_cor)): per-frame tag length for total eps_cor."""
    return math.ceil(math.log2(max(n_frames, 1) / eps_cor))


def verification_tags(frames: np.ndarray, tags_of: PackedToeplitz) -> np.ndarray:
    """Tags (frames x t bits) of each row of ``frames`` under the batch's public Toeplitz hash.

    Both parties use the same ``PackedToeplitz`` (built once from the public seed, t x n).
    """
    return tags_of(frames)


def verified_frames(alice_tags: np.ndarray, bob_frames: np.ndarray, tags_of: PackedToeplitz) -> np.ndarray:
    """Bob's side: boolean mask of frames whose tag equals the one Alice sent."""
    return np.all(verification_tags(bob_frames, tags_of) == alice_tags, axis=-1)
