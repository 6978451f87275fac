"""Classical post-processing of the sifted key, with Alice and Bob kept apart.

Frames of ``FRAME_BITS`` bits are reconciled in batches (Cascade, Bob corrects his own
copy), verified with per-frame Toeplitz tags, and the surviving frames of each side
are compressed by one (modified) Toeplitz privacy-amplification hash.  Only public data
(parities, tags, seeds) crosses between the two sides.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from adapters.qkd_sim.cascade import reconcile
from adapters.qkd_sim.entropy import binary_entropy
from adapters.qkd_sim.toeplitz import PackedToeplitz, ToeplitzHash
from adapters.qkd_sim.verification import tag_bits, verification_tags, verified_frames

FRAME_BITS = 10_000
FRAMES_PER_BATCH = 64


@dataclasses.dataclass(frozen=True)
class Reconciled:
    """Verified frames of each side plus what reconciliation disclosed."""

    alice: np.ndarray
    bob: np.ndarray
    frames: int
    frames_failed: int
    leaked_bits: int
    efficiency: float
    corrected_qber: float


def split_frames(bits: np.ndarray, frame_bits: int = FRAME_BITS) -> np.ndarray:
    """Cut bits into equal frames of at most ``frame_bits`` (frames x size).

    As many frames as needed and as equal as possible, so that fewer bits than frames
    are dropped (a dropped bit is charged as disclosed; a whole short key's remainder
    would cost up to a frame).
    """
    if bits.size == 0:
        return bits.reshape(0, 0)
    count = -(-bits.size // frame_bits)
    size = bits.size // count
    return bits[: count * size].reshape(count, size)


def reconcile_frames(alice_frames: np.ndarray, bob_frames: np.ndarray, qber_estimate: float,
                     eps_cor: float, public_rng: np.random.Generator,
                     progress=None) -> Reconciled:
    """Cascade + verification of every frame, batch by batch."""
    n_frames, frame_bits = bob_frames.shape
    t = tag_bits(n_frames, eps_cor)
    keep, corrected, errors, leaked = [], [], [], 0
    for start in range(0, n_frames, FRAMES_PER_BATCH):
        batch = slice(start, start + FRAMES_PER_BATCH)
        bob_fixed, channel = reconcile(alice_frames[batch], bob_frames[batch],
                                       max(qber_estimate, 1e-3), int(public_rng.integers(2**63)))
        tags_of = PackedToeplitz(public_rng.integers(0, 2, frame_bits + t - 1, dtype=np.uint8), frame_bits, t)
        ok = verified_frames(verification_tags(alice_frames[batch], tags_of), bob_fixed, tags_of)
        keep.append(ok)
        corrected.append(bob_fixed)
        leaked += int(channel.leaked_bits.sum()) + t * ok.size
        errors.append(np.count_nonzero(bob_fixed != bob_frames[batch], axis=1))  # Bob's own flips
        if progress is not None:
            progress(ok.size)
    return _summarise(alice_frames, np.concatenate(corrected), np.concatenate(keep), leaked,
                      np.concatenate(errors), t)


def _summarise(alice_frames, bob_fixed, ok, leaked, errors, t) -> Reconciled:
    n_frames, frame_bits = bob_fixed.shape
    ideal = float(np.sum(frame_bits * binary_entropy(errors / frame_bits)))
    ec_leak = leaked - t * n_frames
    return Reconciled(alice=alice_frames[ok].reshape(-1), bob=bob_fixed[ok].reshape(-1),
                      frames=n_frames, frames_failed=int(n_frames - ok.sum()), leaked_bits=leaked,
                      efficiency=ec_leak / ideal if ideal > 0 else float("nan"),
                      corrected_qber=float(np.sum(errors)) / max(1, n_frames * frame_bits))


def privacy_amplification(bits: np.ndarray, seed: np.ndarray | ToeplitzHash, secret_bits: int) -> bytes:
    """One party's final key: the modified Toeplitz hash [I_m | T] of its bits, as bytes.

    With x = (x1, x2), |x1| = m: key = x1 XOR T x2, T the m x (n - m) Toeplitz matrix of a
    public seed of n - 1 bits (Hayashi and Tsurumaru, IEEE TIT 62, 2213 (2016)).  The
    family is universal_2: for x != x', the keys collide iff T (x2 - x2') = x1 - x1',
    impossible when x2 = x2' and of probability 2^-m otherwise (T d is uniform for any
    d != 0), which is all the leftover hash lemma needs; it hashes n - m bits instead of
    n.  ``seed`` is the public seed or, to share its transform between the parties, the
    :class:`ToeplitzHash` of T built from it once; only this party's bits are hashed.
    """
    n = bits.size
    if not 0 < secret_bits < n:
        raise ValueError(f"PA output must be shorter than its input: {secret_bits} of {n} bits")
    pa = seed if isinstance(seed, ToeplitzHash) else ToeplitzHash(seed, n - secret_bits, secret_bits)
    if (pa.in_bits, pa.out_bits) != (n - secret_bits, secret_bits):
        raise ValueError(f"PA hash is {pa.out_bits} x {pa.in_bits}, need {secret_bits} x {n - secret_bits}")
    return np.packbits(bits[:secret_bits] ^ pa(bits[secret_bits:])).tobytes()
