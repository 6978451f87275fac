"""Bit-exact Toeplitz hashing over GF(2), computed with blocked FFT convolutions.

Toeplitz matrices with a uniformly random seed form a 2^-m almost-universal family
(Mansour, Nisan, Tiwari, STOC 1990; Krawczyk, CRYPTO '94), used here for both error
verification (tag of m bits) and privacy amplification (leftover hash lemma,
Impagliazzo, Levin, Luby 1989; Tomamichel, Schaffner, Smith, Renner, IEEE TIT 57,
5524 (2011)).

Convention: T[i, j] = seed[i - j + n - 1] for an m x n matrix, seed of n + m - 1 bits,
so (T x)_i = (seed * x)[i + n - 1], a slice of the full convolution.

Blocks: T is cut into blocks of at most ``BLOCK_BITS`` rows and columns (zero padding
at the ends).  A rows x cols block is a Toeplitz matrix of its own, given by a seed
segment of rows + cols - 1 bits, and only outputs cols-1 .. cols+rows-2 of the
convolution are needed, so a cyclic convolution of length >= rows + cols - 1 gives
them without wrap-around.  The seed is public: :class:`ToeplitzHash` transforms each
distinct segment once (blocks on one diagonal share it) and every input, of either
party, reuses those spectra.  Products are summed over column blocks in the frequency
domain, so each row block needs one inverse transform.  Transforms of ~2^20 points run
about three times faster per point than one transform of a 5 Mbit key (cache).

Exactness: inputs are 0/1, so every block product is an integer <= cols <= 2^19 and the
sum over column blocks an integer <= n.  Percival's bound on the float64 FFT convolution
error (Math. Comp. 72, 387 (2003)), roughly N * 3 log2(N) * 2^-53 per N-point block
product of 0/1 inputs, is < 1e-8 for N <= 2^20 and adds up over column blocks (< 2e-5
even for n = 10^9; measured 5e-10 for n = 5 * 10^6); every call still checks that all values are within 1/4 of an
integer and raises otherwise, so a wrong hash is never returned silently.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft

BLOCK_BITS = 1 << 19
ROUNDING_MARGIN = 0.25
MAC_TILE = 2048  # frequencies per tile: a tile of every spectrum stays in cache


def _block_shape(in_bits: int, out_bits: int, block_bits: int) -> tuple[int, int]:
    """(rows, cols) of a block: the whole matrix if it fits, else square blocks of block_bits.

    A fixed block side keeps the transform length (a power of two) the same from frame to
    frame, so the FFT library's plan is reused instead of recomputed for every key size.
    """
    if in_bits <= block_bits and out_bits <= block_bits:
        return out_bits, in_bits
    return min(block_bits, out_bits), min(block_bits, in_bits)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class ToeplitzHash:
    """x -> T x mod 2 for the public m x n Toeplitz matrix T of ``seed`` (n + m - 1 bits).

    The seed's block spectra are computed here, once; calling the object hashes one
    party's bits (shape (..., n), leading dimensions are independent inputs) and shares
    nothing with other calls except those public spectra.
    """

    def __init__(self, seed: np.ndarray, in_bits: int, out_bits: int, block_bits: int = BLOCK_BITS):
        if in_bits < 1 or out_bits < 1:
            raise ValueError(f"need at least one input and one output bit, got {in_bits} -> {out_bits}")
        if seed.size != in_bits + out_bits - 1:
            raise ValueError(f"seed must have n + out_bits - 1 = {in_bits + out_bits - 1} bits, got {seed.size}")
        self.in_bits, self.out_bits = in_bits, out_bits
        self._rows, self._cols = _block_shape(in_bits, out_bits, block_bits)
        self._size = 1 << (self._rows + self._cols - 2).bit_length()
        n_row_blocks, n_col_blocks = _ceil_div(out_bits, self._rows), _ceil_div(in_bits, self._cols)
        offsets = (np.arange(n_row_blocks)[:, None] * self._rows
                   - np.arange(1, n_col_blocks + 1)[None, :] * self._cols + n_col_blocks * self._cols)
        distinct, which = np.unique(offsets, return_inverse=True)
        self._which = which.reshape(offsets.shape).astype(np.int64)
        segments = self._segments(seed, distinct, n_row_blocks, n_col_blocks)
        self._spectra = fft.rfft(segments, axis=-1, overwrite_x=True)

    def _segments(self, seed, offsets, n_row_blocks, n_col_blocks) -> np.ndarray:
        """Zero-padded seed segments (float64) of the blocks at the given offsets of the padded seed."""
        front = n_col_blocks * self._cols - self.in_bits
        padded = np.zeros(front + seed.size + n_row_blocks * self._rows - self.out_bits, np.uint8)
        padded[front: front + seed.size] = seed
        width = self._rows + self._cols - 1
        segments = np.zeros((offsets.size, self._size))
        for i, offset in enumerate(offsets):
            segments[i, :width] = padded[offset: offset + width]
        return segments

    def __call__(self, bits: np.ndarray) -> np.ndarray:
        """T x mod 2 (uint8, shape (..., m)) for x = ``bits`` (shape (..., n), 0/1)."""
        if bits.shape[-1] != self.in_bits:
            raise ValueError(f"expected {self.in_bits} input bits, got {bits.shape[-1]}")
        inputs = self._input_spectra(bits.reshape(-1, self.in_bits))
        summed = np.empty((inputs.shape[0], self._which.shape[0], inputs.shape[-1]), np.complex128)
        _multiply_accumulate(self._spectra, self._which, inputs, summed)
        conv = fft.irfft(summed, self._size, axis=-1, overwrite_x=True)
        rows = conv[..., self._cols - 1: self._cols - 1 + self._rows]
        return _parity(rows).reshape(bits.shape[:-1] + (-1,))[..., : self.out_bits]

    def _input_spectra(self, bits: np.ndarray) -> np.ndarray:
        """Spectra (input, column block, frequency) of the zero-padded column blocks of x."""
        n_col_blocks = self._which.shape[1]
        blocks = np.zeros((bits.shape[0], n_col_blocks, self._size))
        full, tail = divmod(self.in_bits, self._cols)
        blocks[:, :full, : self._cols] = bits[:, : full * self._cols].reshape(bits.shape[0], full, self._cols)
        if tail:
            blocks[:, full, :tail] = bits[:, full * self._cols:]
        return fft.rfft(blocks, axis=-1, overwrite_x=True)


@numba.njit(cache=True, nogil=True)
def _multiply_accumulate(spectra, which, inputs, out):
    """out[b, r] = sum_c spectra[which[r, c]] * inputs[b, c], in cache-sized frequency tiles."""
    n_in, n_rows, n_freq = out.shape
    for b in range(n_in):
        for start in range(0, n_freq, MAC_TILE):
            stop = min(n_freq, start + MAC_TILE)
            for r in range(n_rows):
                out[b, r, start:stop] = 0.0
                for c in range(which.shape[1]):
                    d = which[r, c]
                    for f in range(start, stop):
                        out[b, r, f] += spectra[d, f] * inputs[b, c, f]


class PackedToeplitz:
    """The same T x mod 2 computed bitwise in 64-bit words, for short outputs (tags).

    Row i of T is the seed window seed[i .. i + n - 1] reversed; each output bit is the
    parity of (row AND x), folded over the words.  Exact by construction (no floating
    point); costs m n / 64 word operations, so it suits tags of tens of bits.
    """

    def __init__(self, seed: np.ndarray, in_bits: int, out_bits: int):
        if seed.size != in_bits + out_bits - 1:
            raise ValueError(f"seed must have n + out_bits - 1 = {in_bits + out_bits - 1} bits, got {seed.size}")
        self.in_bits, self.out_bits = in_bits, out_bits
        self._rows = _pack_words(sliding_window_view(seed, in_bits)[:out_bits, ::-1])

    def __call__(self, bits: np.ndarray) -> np.ndarray:
        """T x mod 2 (uint8, shape (..., m)) for x = ``bits`` (shape (..., n), 0/1)."""
        if bits.shape[-1] != self.in_bits:
            raise ValueError(f"expected {self.in_bits} input bits, got {bits.shape[-1]}")
        words = _pack_words(bits.reshape(-1, self.in_bits))
        folded = np.bitwise_xor.reduce(words[:, None, :] & self._rows[None, :, :], axis=-1)
        for shift in (32, 16, 8, 4, 2, 1):
            folded ^= folded >> np.uint64(shift)
        return (folded & np.uint64(1)).astype(np.uint8).reshape(bits.shape[:-1] + (self.out_bits,))


def _pack_words(bits: np.ndarray) -> np.ndarray:
    """Rows of 0/1 packed into uint64 words (zero padded)."""
    packed = np.packbits(bits, axis=-1)
    pad = -packed.shape[-1] % 8
    if pad:
        packed = np.concatenate([packed, np.zeros(packed.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.ascontiguousarray(packed).view(np.uint64)


def _parity(conv: np.ndarray) -> np.ndarray:
    """Parity (uint8) of integer-valued float sums, refusing any that are not near-integers."""
    flat = np.ascontiguousarray(conv).reshape(-1)
    out = np.empty(flat.size, np.uint8)
    if _rounded_parity(flat, out) > ROUNDING_MARGIN:
        raise ArithmeticError("FFT convolution lost integer exactness; reduce BLOCK_BITS")
    return out.reshape(conv.shape)


@numba.njit(cache=True, nogil=True)
def _rounded_parity(values, out):
    """out = round(values) mod 2; returns the largest distance to the nearest integer."""
    worst = 0.0
    for i in range(values.size):
        exact = np.rint(values[i])
        worst = max(worst, abs(values[i] - exact))
        out[i] = np.int64(exact) & 1
    return worst


def toeplitz_hash(bits: np.ndarray, seed: np.ndarray, out_bits: int,
                  block_bits: int = BLOCK_BITS) -> np.ndarray:
    """T x mod 2 for x = ``bits`` (shape (..., n), 0/1) and T from ``seed`` (n + out_bits - 1).

    One-off convenience; build a :class:`ToeplitzHash` to reuse the seed's spectra.
    """
    return ToeplitzHash(seed, bits.shape[-1], out_bits, block_bits)(bits)


def toeplitz_hash_naive(bits: np.ndarray, seed: np.ndarray, out_bits: int) -> np.ndarray:
    """Reference: build T explicitly and multiply mod 2 (small sizes only, for tests)."""
    n = bits.shape[-1]
    i, j = np.meshgrid(np.arange(out_bits), np.arange(n), indexing="ij")
    matrix = seed[i - j + n - 1].astype(np.int64)
    return ((bits.astype(np.int64) @ matrix.T) & 1).astype(np.uint8)
