"""The equality check of a block's two copies, revealing nothing of the key.

The master end draws a fresh uniform Toeplitz seed S (public: it travels over the KM
channel) and sends the tag

    tag = T_S(rest) XOR pad,    (pad, rest) = block[:t/8], block[t/8:]

where T_S is the t x n Toeplitz matrix of S over GF(2) (the convention of
:mod:`adapters.qkd_sim.toeplitz`). The slave end computes the same over its copy and
keeps the block only if the tags agree; both ends then drop ``pad`` and keep ``rest``.

- Correctness: if the copies differ in ``rest`` by D != 0, the tags agree only if
  T_S D equals the pads' difference; S is uniform and chosen after the device delivered
  the master's copy and without the slave's device seeing it (the KM channel is
  node-to-node mutual TLS), so this happens with probability exactly 2^-t
  (Toeplitz matrices with a uniform seed are 2^-t almost-XOR-universal: Mansour,
  Nisan, Tiwari, STOC 1990; Krawczyk, CRYPTO '94). Copies that differ only in ``pad``
  always fail. So a block passes with different bytes at most with eps_cor = 2^-t,
  t = 8 * ceil(log2(1/eps_cor) / 8) (whole bytes; eps_cor 1e-15 gives t = 56, 2^-56
  ~ 1.4e-17 per block).
- Secrecy: ``pad`` is t uniform key bits independent of ``rest`` and used nowhere
  else, so the tag is a one-time-pad encryption of T_S(rest): it is uniform and
  independent of ``rest`` whatever S is, and reveals nothing about the bits kept. The
  t pad bits are the price, discarded at both ends.

The product T_S x is computed directly (NumPy, a t x n sliding window of S): blocks
are a few kilobits, and a web worker answering its peer must not load SciPy.
"""

from __future__ import annotations

import hmac
import math
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def tag_bytes(eps_cor: float) -> int:
    """Tag length in bytes: the smallest whole number of bytes t/8 with 2^-t <= eps_cor."""
    return max(1, math.ceil(math.log2(1.0 / eps_cor) / 8))


def new_seed(block_bytes: int, eps_cor: float) -> bytes:
    """A fresh uniform seed for a block of ``block_bytes`` (n + t - 1 bits, rounded up to bytes)."""
    n, t = _sizes(block_bytes, eps_cor)
    return os.urandom(math.ceil((n + t - 1) / 8))


def seed_bytes(block_bytes: int, eps_cor: float) -> int:
    """Length of the seed ``new_seed`` draws for such a block."""
    n, t = _sizes(block_bytes, eps_cor)
    return math.ceil((n + t - 1) / 8)


def tag(block: bytes, seed: bytes, eps_cor: float) -> bytes:
    """T_S(rest) XOR pad for ``block`` (pad first, then rest)."""
    t_bytes = tag_bytes(eps_cor)
    pad, rest = block[:t_bytes], block[t_bytes:]
    n, t = 8 * len(rest), 8 * t_bytes
    if not rest or len(seed) != math.ceil((n + t - 1) / 8):
        raise ValueError("block too short for the check, or a seed of the wrong length")
    bits = np.unpackbits(np.frombuffer(rest, np.uint8))
    seed_bits = np.unpackbits(np.frombuffer(seed, np.uint8))[: n + t - 1]
    # Row i of T holds seed[i + n - 1 - j] at column j: a window of the seed, reversed.
    rows = sliding_window_view(seed_bits, n)[:t, ::-1]
    hashed = (rows.astype(np.int64) @ bits.astype(np.int64)) & 1
    return bytes(a ^ b for a, b in zip(np.packbits(hashed.astype(np.uint8)).tobytes(), pad))


def same(block: bytes, seed: bytes, eps_cor: float, their_tag: bytes) -> bool:
    """Whether ``block`` passes the check against the peer's tag (constant time)."""
    return hmac.compare_digest(tag(block, seed, eps_cor), their_tag)


def kept(block: bytes, eps_cor: float) -> bytes:
    """What stays of a checked block: everything after the pad."""
    return block[tag_bytes(eps_cor):]


def _sizes(block_bytes: int, eps_cor: float) -> tuple[int, int]:
    t_bytes = tag_bytes(eps_cor)
    return 8 * (block_bytes - t_bytes), 8 * t_bytes
