"""Cascade information reconciliation, vectorised over many frames at once.

Protocol: Brassard and Salvail, "Secret-key reconciliation by public discussion",
EUROCRYPT '93; with the improvements analysed by Martinez-Mateo, Pacher, Peev,
Ciurana and Martin, "Demystifying the information reconciliation protocol Cascade",
QIC 15, 453 (2015): block sizes that are powers of two (so every binary-search
sub-block is a node of a dyadic parity tree), reuse of every parity already
disclosed (known sub-block parities are searched directly and never asked twice),
and more passes with large blocks to drive the frame error rate down.

Alice and Bob are separate objects.  Bob drives: he asks for parities of tree nodes
and Alice answers through :class:`~adapters.qkd_sim.classical.PublicChannel`, which
counts every disclosed bit.  Bob corrects only his own bits.  All binary searches of
one round (every frame, every pass, every odd block) advance in lockstep as array
operations; the Python loops run over passes, tree levels and rounds only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from adapters.qkd_sim.classical import PublicChannel

UNKNOWN = -1


@dataclasses.dataclass(frozen=True)
class Pass:
    """One Cascade pass: a public permutation and a block size of 2**size_log2."""

    perm: np.ndarray
    inverse: np.ndarray
    size_log2: int


def block_sizes_log2(qber: float, frame_bits: int, n_passes: int = 6) -> list[int]:
    """Block sizes (log2 of bits) per pass, powers of two as Martinez-Mateo et al. 2015.

    k1 = 2^floor(log2(1/qber)), k2 = 8 k1, then blocks of about half a frame
    (4096 bits for 10^4-bit frames).  Chosen by a scan over k1, k2 and the number of
    passes on 10^4-bit frames at QBER 1, 2 and 5 % (see docs/simulation.md); it is the
    "large blocks after pass two" shape of the paper's best variants.
    """
    cap = max(1, int(math.floor(math.log2(max(frame_bits, 2)))) - 1)
    first = min(cap, max(1, int(math.floor(math.log2(1.0 / max(qber, 1e-4))))))
    second = min(cap, first + 3)
    return [first, second] + [cap] * max(0, n_passes - 2)


def make_passes(sizes_log2: list[int], frame_bits: int, public_seed: int) -> list[Pass]:
    """Pass 1 keeps the order; later passes use permutations drawn from a public seed."""
    rng = np.random.default_rng(public_seed)
    passes = []
    for i, size in enumerate(sizes_log2):
        perm = np.arange(frame_bits) if i == 0 else rng.permutation(frame_bits)
        passes.append(Pass(perm, np.argsort(perm), size))
    return passes


def _padded_bits(frame_bits: int, size_log2: int) -> int:
    block = 1 << size_log2
    return -(-frame_bits // block) * block


class ParityTrees:
    """One party's bits (frames x bits) and, per pass, its dyadic parity tree.

    ``trees[q][l][f, i]`` is the parity of permuted bits [i*2^l, (i+1)*2^l) of frame
    f in pass q; bits past the frame end are zero padding known to both parties.
    """

    def __init__(self, bits: np.ndarray):
        self.bits = bits
        self.trees: list[list[np.ndarray]] = []

    def add_pass(self, p: Pass) -> None:
        """Build the tree of a new pass from the current bits."""
        frames, n = self.bits.shape
        level = np.zeros((frames, _padded_bits(n, p.size_log2)), np.uint8)
        level[:, :n] = self.bits[:, p.perm]
        levels = [level]
        for _ in range(p.size_log2):
            levels.append(levels[-1][:, 0::2] ^ levels[-1][:, 1::2])
        self.trees.append(levels)

    def node(self, q: int, level: int, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Parities of the given nodes."""
        return self.trees[q][level][frames, idx]

    def flip(self, frames: np.ndarray, positions: np.ndarray, passes: list[Pass]) -> None:
        """Flip distinct bits (frame, position) and every tree node above them."""
        self.bits[frames, positions] ^= 1
        for levels, p in zip(self.trees, passes):
            j = p.inverse[positions]
            for level, nodes in enumerate(levels):
                np.bitwise_xor.at(nodes, (frames, j >> level), 1)


class CascadeAlice:
    """Alice's side: answers parity requests about her own bits, nothing else."""

    def __init__(self, bits: np.ndarray, channel: PublicChannel):
        self._trees = ParityTrees(bits)
        self._channel = channel

    def start_pass(self, p: Pass) -> None:
        """Prepare the parity tree of a new pass."""
        self._trees.add_pass(p)

    def answer(self, q: int, level: int, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Disclose parities of nodes (each one counted as a leaked bit)."""
        return self._channel.disclose(frames, self._trees.node(q, level, frames, idx))


class CascadeBob:
    """Bob's side: his bits, his trees, and Alice's parities he has learned."""

    def __init__(self, bits: np.ndarray, alice: CascadeAlice, frame_bits: int):
        self.trees = ParityTrees(bits)
        self.alice = alice
        self.frame_bits = frame_bits
        self.known: list[list[np.ndarray]] = []
        self.passes: list[Pass] = []

    def start_pass(self, p: Pass) -> None:
        """Open a pass: build trees and learn Alice's top-level block parities."""
        self.passes.append(p)
        self.alice.start_pass(p)
        self.trees.add_pass(p)
        q = len(self.passes) - 1
        self.known.append([np.full(lv.shape, UNKNOWN, np.int8) for lv in self.trees.trees[q]])
        top = self.known[q][p.size_log2]
        frames, idx = np.indices(top.shape).reshape(2, -1)
        top[frames, idx] = self.alice.answer(q, p.size_log2, frames, idx)

    def odd_top_blocks(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        """Blocks of pass q whose parity differs from Alice's."""
        top = self.passes[q].size_log2
        return np.nonzero(self.known[q][top] != self.trees.trees[q][top])

    def odd_nodes_above(self, frames: np.ndarray, positions: np.ndarray):
        """Per pass, the distinct lowest known nodes above flipped bits that now differ from Alice's."""
        for r, p in enumerate(self.passes):
            j = p.inverse[positions]
            odd = np.stack([self._is_odd(r, lv, frames, j >> lv) for lv in range(p.size_log2 + 1)], 1)
            hit = odd.any(axis=1)
            level = np.argmax(odd, axis=1)[hit]
            key = np.unique((frames[hit] * (p.size_log2 + 1) + level) * self.trees.trees[r][0].shape[1]
                            + (j[hit] >> level))
            key, idx = np.divmod(key, self.trees.trees[r][0].shape[1])
            yield r, key // (p.size_log2 + 1), idx, key % (p.size_log2 + 1)

    def _is_odd(self, r: int, level: int, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        known = self.known[r][level][frames, idx]
        return (known != UNKNOWN) & (known != self.trees.trees[r][level][frames, idx])

    def binary_search(self, r: int, frames: np.ndarray, idx: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Descend from odd known nodes of pass r to one erroneous bit each (lockstep).

        Returns the erroneous positions in original (unpermuted) frame order.
        """
        for lv in range(int(level.max(initial=0)), 0, -1):
            here = np.flatnonzero(level == lv)
            idx[here] = self._descend(r, lv, frames[here], idx[here])
            level[here] = lv - 1
        return self.passes[r].perm[idx]

    def _descend(self, r: int, lv: int, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """One step down: learn Alice's parity of the left child (free if inferable)."""
        known = self.known[r][lv - 1]
        left, right = 2 * idx, 2 * idx + 1
        parent = self.known[r][lv][frames, idx]
        padding = (right << (lv - 1)) >= self.frame_bits
        known[frames[padding], right[padding]] = 0
        ask = (known[frames, left] == UNKNOWN) & (known[frames, right] == UNKNOWN)
        known[frames[ask], left[ask]] = self.alice.answer(r, lv - 1, frames[ask], left[ask])
        alice_left = np.where(known[frames, left] != UNKNOWN, known[frames, left],
                              parent ^ known[frames, right])
        known[frames, left] = alice_left
        known[frames, right] = parent ^ alice_left
        go_left = alice_left != self.trees.trees[r][lv - 1][frames, left]
        return np.where(go_left, left, right)

    def correct(self, frames: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flip distinct erroneous bits found in a round; returns what was flipped."""
        n = self.frame_bits
        flat = np.unique(frames.astype(np.int64) * n + positions)
        frames, positions = flat // n, flat % n
        self.trees.flip(frames, positions, self.passes)
        return frames, positions


def _cascade_rounds(bob: CascadeBob, q: int) -> None:
    """Correct the odd blocks of pass q, then chase the cascade of odd nodes it causes."""
    frames, idx = bob.odd_top_blocks(q)
    top = bob.passes[q].size_log2
    found = [(frames, bob.binary_search(q, frames, idx.copy(), np.full(idx.size, top)))]
    while sum(f.size for f, _ in found):
        flipped = bob.correct(np.concatenate([f for f, _ in found]),
                              np.concatenate([p for _, p in found]))
        found = [(f, bob.binary_search(r, f, i, lv))
                 for r, f, i, lv in bob.odd_nodes_above(*flipped)]


def reconcile(alice_bits: np.ndarray, bob_bits: np.ndarray, qber_estimate: float,
              public_seed: int, n_passes: int = 6) -> tuple[np.ndarray, PublicChannel]:
    """Run Cascade on a batch of equal-length frames (frames x bits, uint8).

    ``alice_bits`` is only ever read by Alice's object; Bob's corrected copy is returned
    together with the channel, whose ``leaked_bits`` is the per-frame disclosure.
    """
    n_frames, frame_bits = bob_bits.shape
    channel = PublicChannel(n_frames)
    bob = CascadeBob(bob_bits.copy(), CascadeAlice(alice_bits, channel), frame_bits)
    sizes = block_sizes_log2(qber_estimate, frame_bits, n_passes)
    for q, p in enumerate(make_passes(sizes, frame_bits, public_seed)):
        bob.start_pass(p)
        _cascade_rounds(bob, q)
    return bob.trees.bits, channel
