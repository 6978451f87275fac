"""Bit-exact Toeplitz hashing over GF(2), computed with blocked FFT convolutions.

Toeplitz matrices with a uniformly random seed form a 2^-m almost-universal family
(Mansour, Nisan, Tiwari, STOC 1990; Krawczyk, CRYPTO '94), used here for both error
verification (tag of m bits) and privacy amplification (leftover hash lemma,
Impagliazzo, Levin, Luby 1989; Tomamichel, Schaffner, Smith, Renner, IEEE TIT 57,
5524 (2011)).

Convention: T[i, j] = seed[i - j + n - 1] for an m x n matrix, seed of n + m - 1 bits,
so (T x)_i = (seed * x)[i + n - 1], a slice of the full convolution.

Exactness: every block is at most ``BLOCK_BITS`` = 2^23 rows and columns, so each
convolution sum is an integer <= 2^23 and the FFT length is <= 2^25.  Percival's
bound on the float64 FFT convolution error (Math. Comp. 72, 387 (2003)), roughly
N * max|x| * max|y| * 3 log2(N) * 2^-53 for N-point transforms of 0/1 inputs, is
< 1e-6 here, far below 1/2; every block still checks that all values are within 1/4
of an integer and raises otherwise, so a wrong hash is never returned silently.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

BLOCK_BITS = 1 << 23
ROUNDING_MARGIN = 0.25


def _block_product(seed: np.ndarray, x: np.ndarray, rows: int) -> np.ndarray:
    """Integer (not reduced) product of a rows x cols Toeplitz block with x (..., cols)."""
    cols = x.shape[-1]
    size = fft.next_fast_len(seed.size + cols - 1, real=True)
    conv = fft.irfft(fft.rfft(seed.astype(np.float64), size) * fft.rfft(x.astype(np.float64), size, axis=-1),
                     size, axis=-1)[..., cols - 1: cols - 1 + rows]
    exact = np.rint(conv)
    if conv.size and np.max(np.abs(conv - exact)) > ROUNDING_MARGIN:
        raise ArithmeticError("FFT convolution lost integer exactness; reduce BLOCK_BITS")
    return exact.astype(np.int64)


def toeplitz_hash(bits: np.ndarray, seed: np.ndarray, out_bits: int,
                  block_bits: int = BLOCK_BITS) -> np.ndarray:
    """T x mod 2 for x = ``bits`` (shape (..., n), 0/1) and T from ``seed`` (n + out_bits - 1).

    Leading dimensions are independent inputs hashed with the same matrix.
    """
    n = bits.shape[-1]
    if seed.size != n + out_bits - 1:
        raise ValueError(f"seed must have n + out_bits - 1 = {n + out_bits - 1} bits, got {seed.size}")
    out = np.zeros(bits.shape[:-1] + (out_bits,), np.int64)
    for r0 in range(0, out_bits, block_bits):
        r1 = min(out_bits, r0 + block_bits)
        for c0 in range(0, n, block_bits):
            c1 = min(n, c0 + block_bits)
            offset = r0 - c1 + n  # seed index of T[r0, c1 - 1]
            block_seed = seed[offset: offset + (r1 - r0) + (c1 - c0) - 1]
            out[..., r0:r1] += _block_product(block_seed, bits[..., c0:c1], r1 - r0)
    return (out & 1).astype(np.uint8)


def toeplitz_hash_naive(bits: np.ndarray, seed: np.ndarray, out_bits: int) -> np.ndarray:
    """Reference: build T explicitly and multiply mod 2 (small sizes only, for tests)."""
    n = bits.shape[-1]
    i, j = np.meshgrid(np.arange(out_bits), np.arange(n), indexing="ij")
    matrix = seed[i - j + n - 1].astype(np.int64)
    return ((bits.astype(np.int64) @ matrix.T) & 1).astype(np.uint8)
