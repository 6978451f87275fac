"""Toeplitz hashing (Krawczyk, CRYPTO '94): the blocked FFT path equals the naive GF(2) product."""

import numpy as np
import pytest

from adapters.qkd_sim.postprocessing import privacy_amplification
from adapters.qkd_sim.toeplitz import PackedToeplitz, ToeplitzHash, toeplitz_hash, toeplitz_hash_naive


def _inputs(n, m, seed, leading=(3,)):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, leading + (n,), dtype=np.uint8),
            rng.integers(0, 2, n + m - 1, dtype=np.uint8))


@pytest.mark.parametrize("n, m, block", [
    (50, 20, 8),        # both sides cut: square blocks, diagonals share spectra
    (300, 120, 64),
    (1000, 999, 128),
    (17, 1, 4),         # one output bit
    (1000, 10, 64),     # short tag, many column blocks, one row block
    (10, 1000, 64),     # more outputs than inputs
    (1001, 37, 1000),   # ragged last column block
    (1024, 512, 256),   # exact multiples: no padding
])
def test_blocked_fft_equals_naive_product(n, m, block):
    x, seed = _inputs(n, m, seed=n + m)
    expected = toeplitz_hash_naive(x, seed, m)
    assert np.array_equal(toeplitz_hash(x, seed, m, block_bits=block), expected)
    assert np.array_equal(toeplitz_hash(x, seed, m), expected)  # single block


def test_one_hash_object_serves_many_inputs_like_fresh_ones():
    x, seed = _inputs(700, 300, seed=5, leading=(4,))
    shared = ToeplitzHash(seed, 700, 300, block_bits=128)
    for row in x:  # e.g. Alice's then Bob's key, each hashed on its own
        assert np.array_equal(shared(row), toeplitz_hash_naive(row, seed, 300))
    assert np.array_equal(shared(x), toeplitz_hash_naive(x, seed, 300))


def test_privacy_amplification_is_the_modified_toeplitz_product():
    # key = [I_m | T] x with T the m x (n - m) Toeplitz matrix of an (n - 1)-bit seed
    # (Hayashi and Tsurumaru 2016), whether the seed's transform is shared or not.
    n, m = 4000, 1600
    (key,), seed = _inputs(n - m, m, seed=6, leading=(1,))
    key = np.concatenate([np.random.default_rng(7).integers(0, 2, m, dtype=np.uint8), key])
    expected = np.packbits(key[:m] ^ toeplitz_hash_naive(key[m:], seed, m)).tobytes()
    shared = ToeplitzHash(seed, n - m, m, block_bits=512)
    assert privacy_amplification(key, shared, m) == expected
    assert privacy_amplification(key, seed, m) == expected
    with pytest.raises(ValueError):
        privacy_amplification(key[:-1], shared, m)
    with pytest.raises(ValueError):
        privacy_amplification(key, seed, n)


@pytest.mark.parametrize("n, m", [(10_000, 53), (10_000, 64), (777, 5), (64, 64), (65, 1)])
def test_packed_toeplitz_equals_naive_product(n, m):
    x, seed = _inputs(n, m, seed=n + m, leading=(5,))
    assert np.array_equal(PackedToeplitz(seed, n, m)(x), toeplitz_hash_naive(x, seed, m))
    assert np.array_equal(PackedToeplitz(seed, n, m)(x[0]), toeplitz_hash_naive(x[0], seed, m))


def test_large_key_matches_an_independent_dense_computation_on_sampled_rows():
    # 2 Mbit in, 1 Mbit out, default blocks: several row and column blocks.
    n, m = 2_000_003, 1_000_001
    (x,), seed = _inputs(n, m, seed=7, leading=(1,))
    out = ToeplitzHash(seed, n, m)(x)
    rows = np.random.default_rng(8).choice(m, 40, replace=False)
    for i in rows:  # (T x)_i = sum_j seed[i - j + n - 1] x_j
        assert out[i] == int(np.dot(seed[i: i + n][::-1].astype(np.int64), x)) & 1


def test_wrong_sizes_are_refused():
    x, seed = _inputs(20, 5, seed=9)
    with pytest.raises(ValueError):
        ToeplitzHash(seed[:-1], 20, 5)
    with pytest.raises(ValueError):
        ToeplitzHash(seed, 20, 5)(x[:, :-1])
