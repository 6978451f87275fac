"""Cascade information reconciliation, frame by frame in compiled kernels.

Protocol: Brassard and Salvail, "Secret-key reconciliation by public discussion",
EUROCRYPT '93; with the improvements analysed by Martinez-Mateo, Pacher, Peev,
Ciurana and Martin, "Demystifying the information reconciliation protocol Cascade",
QIC 15, 453 (2015): block sizes that are powers of two (so every binary-search
sub-block is a node of a dyadic parity tree), reuse of every parity already
disclosed (known sub-block parities are searched directly and never asked twice, a
sibling's parity is inferred from its parent's), and more passes with large blocks to
drive the frame error rate down.

Alice and Bob are kept apart.  Alice's kernel (:class:`CascadeAlice`) computes, from
her bits only, the parity of every tree node she might be asked about.  Bob's kernel
holds his bits and trees and learns an Alice parity only through ``_ask``,
which counts it as a disclosed bit of that frame (lambda_EC); parities he can infer
(padding, the sibling of a known node under a known parent) cost nothing.  Bob
corrects only his own bits.  The interaction is sequential (each answer decides the
next question), so it runs as a compiled loop per frame (numba), not as NumPy array
operations; the result is counted in :class:`adapters.qkd_sim.classical.PublicChannel`.
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from adapters.qkd_sim.classical import PublicChannel

UNKNOWN = -1


@dataclasses.dataclass(frozen=True)
class Passes:
    """Public choices of all passes: permutations, block sizes (log2), tree layout."""

    perm: np.ndarray  # (passes, n) permuted position -> frame position
    inverse: np.ndarray  # (passes, n) frame position -> permuted position
    size_log2: np.ndarray  # (passes,)
    padded: np.ndarray  # (passes,) bits per pass after zero padding to whole blocks
    offsets: np.ndarray  # (passes, max levels + 1) start of each tree level in a flat tree
    nodes: int  # flat tree size (the largest pass's)


def block_sizes_log2(qber: float, frame_bits: int, n_passes: int = 8) -> list[int]:
    """Block sizes (log2 of bits) per pass, powers of two as Martinez-Mateo et al. 2015.

    k1 = 2^floor(log2(1/qber)), k2 = 8 k1, then blocks of about half a frame
    (4096 bits for 10^4-bit frames).  Chosen by a scan over k1, k2 and the number of
    passes on 10^4-bit frames at QBER 1, 2 and 5 % (see docs/simulation.md); it is the
    "large blocks after pass two" shape of the paper's best variants.  Eight passes
    rather than six: on 1024 frames at 1 / 3 / 5 % the frames left with errors drop from
    6 / 4 / 9 to 0 / 0 / 1 for ~0.008 more f, and a frame failing verification costs its
    whole length in the key bound.
    """
    cap = max(1, int(math.floor(math.log2(max(frame_bits, 2)))) - 1)
    first = min(cap, max(1, int(math.floor(math.log2(1.0 / max(qber, 1e-4))))))
    second = min(cap, first + 3)
    return [first, second] + [cap] * max(0, n_passes - 2)


def make_passes(sizes_log2: list[int], frame_bits: int, public_seed: int) -> Passes:
    """Pass 1 keeps the order; later passes use permutations drawn from a public seed."""
    rng = np.random.default_rng(public_seed)
    perms = [np.arange(frame_bits)] + [rng.permutation(frame_bits) for _ in sizes_log2[1:]]
    perm = np.array(perms, np.int32)
    padded = np.array([-(-frame_bits >> s) << s for s in sizes_log2], np.int64)
    levels = max(sizes_log2) + 1
    offsets = np.zeros((len(sizes_log2), levels + 1), np.int64)
    for q, (s, n_pad) in enumerate(zip(sizes_log2, padded)):
        offsets[q, 1: s + 2] = np.cumsum([n_pad >> lv for lv in range(s + 1)])
        offsets[q, s + 2:] = offsets[q, s + 1]
    return Passes(perm, np.argsort(perm, axis=1).astype(np.int32), np.array(sizes_log2, np.int64), padded, offsets,
                  int(offsets[:, -1].max()))


@numba.njit(cache=True, nogil=True)
def _build_tree(bits, perm, size_log2, padded, offsets, tree):
    """Node parities of one pass above the bits: level 1 from pairs of permuted
    (zero-padded) bits, then pairs of pairs.  Level 0 is read from the bits themselves."""
    n = bits.size
    for i in range(padded >> 1):
        left = bits[perm[2 * i]] if 2 * i < n else np.uint8(0)
        right = bits[perm[2 * i + 1]] if 2 * i + 1 < n else np.uint8(0)
        tree[offsets[1] + i] = left ^ right
    for lv in range(2, size_log2 + 1):
        below, here = offsets[lv - 1], offsets[lv]
        for i in range(padded >> lv):
            tree[here + i] = tree[below + 2 * i] ^ tree[below + 2 * i + 1]


@numba.njit(cache=True, nogil=True)
def _value(trees, bits, perm, offsets, q, node):
    """Parity of a node of pass q: a (padded) bit on level 0, else the tree's entry."""
    # One return type on every path: mixing uint8 and int made numba's code ~100x slower.
    if node >= offsets[q, 1]:
        return np.int64(trees[q, node])
    if node < bits.size:
        return np.int64(bits[perm[q, node]])
    return np.int64(0)


@numba.njit(cache=True, nogil=True)
def _alice_trees(bits, perm, size_log2, padded, offsets, nodes):
    frames, passes = bits.shape[0], perm.shape[0]
    trees = np.empty((frames, passes, nodes), np.uint8)  # level 0 (the bits) never written nor read
    for f in range(frames):
        for q in range(passes):
            _build_tree(bits[f], perm[q], size_log2[q], padded[q], offsets[q], trees[f, q])
    return trees


class CascadeAlice:
    """Alice's side: her bits and the parities of them she may be asked for, nothing else."""

    def __init__(self, bits: np.ndarray, passes: Passes):
        self.bits = bits
        self.trees = _alice_trees(bits, passes.perm, passes.size_log2, passes.padded, passes.offsets,
                                  passes.nodes)


@numba.njit(cache=True, nogil=True)
def _ask(alice_trees, alice_bits, perm, offsets, known, q, node, leaked):
    """Alice discloses the parity of ``node`` of pass q: one leaked bit."""
    known[q, node] = np.int8(_value(alice_trees, alice_bits, perm, offsets, q, node))
    leaked[0] += 1


@numba.njit(cache=True, nogil=True)
def _search(alice_trees, alice_bits, known, trees, bits, perm, offsets, q, level, idx, leaked):
    """Binary search from an odd known node of pass q down to one erroneous bit; its frame position."""
    n = bits.size
    while level > 0:
        below = offsets[q, level - 1]
        left, right = below + 2 * idx, below + 2 * idx + 1
        parent = known[q, offsets[q, level] + idx]
        if ((2 * idx + 1) << (level - 1)) >= n:
            known[q, right] = 0  # all padding, known to both
        if known[q, left] == UNKNOWN and known[q, right] == UNKNOWN:
            _ask(alice_trees, alice_bits, perm, offsets, known, q, left, leaked)
        if known[q, left] == UNKNOWN:
            known[q, left] = parent ^ known[q, right]
        if known[q, right] == UNKNOWN:
            known[q, right] = parent ^ known[q, left]
        mine = _value(trees, bits, perm, offsets, q, left)
        idx = 2 * idx if known[q, left] != mine else 2 * idx + 1
        level -= 1
    return perm[q, idx]


@numba.njit(cache=True, nogil=True)
def _flip(bits, trees, inverse, size_log2, offsets, pos, started):
    """Flip a bit and the nodes above it in the trees of the passes started so far."""
    bits[pos] ^= 1
    for q in range(started):
        j = inverse[q, pos]
        for lv in range(1, size_log2[q] + 1):
            trees[q, offsets[q, lv] + (j >> lv)] ^= 1


@numba.njit(cache=True, nogil=True)
def _odd(known, trees, bits, perm, offsets, q, node):
    """Whether Bob knows Alice's parity of node (pass q) and his own differs."""
    k = np.int64(known[q, node])
    if k == UNKNOWN:
        return False
    return k != _value(trees, bits, perm, offsets, q, node)


@numba.njit(cache=True, nogil=True)
def _cascade_frame(alice_trees, alice_bits, bits, perm, inverse, size_log2, padded, offsets, known, trees,
                   stack, leaked):
    passes = perm.shape[0]
    known[:] = UNKNOWN
    for q in range(passes):
        _build_tree(bits, perm[q], size_log2[q], padded[q], offsets[q], trees[q])  # from the bits as they are now
        top = offsets[q, size_log2[q]]
        depth = 0
        for i in range(padded[q] >> size_log2[q]):
            _ask(alice_trees, alice_bits, perm, offsets, known, q, top + i, leaked)
            if _odd(known, trees, bits, perm, offsets, q, top + i):
                stack[depth, 0], stack[depth, 1], stack[depth, 2] = q, size_log2[q], i
                depth += 1
        while depth > 0:
            depth -= 1
            r, lv, i = stack[depth, 0], stack[depth, 1], stack[depth, 2]
            if not _odd(known, trees, bits, perm, offsets, r, offsets[r, lv] + i):
                continue  # corrected meanwhile
            pos = _search(alice_trees, alice_bits, known, trees, bits, perm, offsets, r, lv, i, leaked)
            _flip(bits, trees, inverse, size_log2, offsets, pos, q + 1)
            for rr in range(q + 1):  # every started pass: the lowest known node now odd
                j = inverse[rr, pos]
                for lv2 in range(size_log2[rr] + 1):
                    if _odd(known, trees, bits, perm, offsets, rr, offsets[rr, lv2] + (j >> lv2)):
                        stack[depth, 0], stack[depth, 1], stack[depth, 2] = rr, lv2, j >> lv2
                        depth += 1
                        break


@numba.njit(cache=True, nogil=True)
def _cascade_bob(alice_trees, alice_bits, bits, perm, inverse, size_log2, padded, offsets, nodes):
    frames, passes = bits.shape[0], perm.shape[0]
    leaked = np.zeros(frames, np.int64)
    known = np.empty((passes, nodes), np.int8)
    trees = np.zeros((passes, nodes), np.uint8)
    stack = np.empty((passes * bits.shape[1] + 16, 3), np.int64)
    for f in range(frames):
        _cascade_frame(alice_trees[f], alice_bits[f], bits[f], perm, inverse, size_log2, padded, offsets, known,
                       trees, stack, leaked[f:f + 1])
    return leaked


def reconcile(alice_bits: np.ndarray, bob_bits: np.ndarray, qber_estimate: float,
              public_seed: int, n_passes: int = 8) -> tuple[np.ndarray, PublicChannel]:
    """Run Cascade on a batch of equal-length frames (frames x bits, uint8).

    ``alice_bits`` is only ever read by Alice's object; Bob's corrected copy is returned
    together with the channel, whose ``leaked_bits`` is the per-frame disclosure.
    """
    n_frames, frame_bits = bob_bits.shape
    passes = make_passes(block_sizes_log2(qber_estimate, frame_bits, n_passes), frame_bits, public_seed)
    alice = CascadeAlice(np.ascontiguousarray(alice_bits, np.uint8), passes)
    bob = np.array(bob_bits, np.uint8, order="C")
    leaked = _cascade_bob(alice.trees, alice.bits, bob, passes.perm, passes.inverse, passes.size_log2,
                          passes.padded, passes.offsets, passes.nodes)
    channel = PublicChannel(n_frames)
    channel.record(leaked)
    return bob, channel
