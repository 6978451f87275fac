"""The equality check: the same Toeplitz family as the simulator's, a tag that depends on
every kept bit, and a one-time pad that hides the kept bits."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.devices import check
from adapters.qkd_sim.toeplitz import toeplitz_hash_naive

EPS = 1e-15


def block(seed: int, size: int = 256) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("eps_cor, t_bytes", [(1e-15, 7), (2**-64, 8), (1e-3, 2), (0.5**8, 1)])
def test_the_tag_length_is_the_smallest_whole_bytes_meeting_eps_cor(eps_cor: float, t_bytes: int) -> None:
    assert check.tag_bytes(eps_cor) == t_bytes
    assert 2.0 ** (-8 * t_bytes) <= eps_cor < 2.0 ** (-8 * (t_bytes - 1))


@pytest.mark.parametrize("size", [8, 100, 1024])
def test_the_hash_is_the_simulator_s_toeplitz_hash(size: int) -> None:
    data = block(size, size)
    seed = check.new_seed(size, EPS)
    t = check.tag_bytes(EPS)
    rest, pad = data[t:], data[:t]
    n = 8 * len(rest)
    seed_bits = np.unpackbits(np.frombuffer(seed, np.uint8))[: n + 8 * t - 1]
    hashed = toeplitz_hash_naive(np.unpackbits(np.frombuffer(rest, np.uint8)), seed_bits, 8 * t)
    expected = bytes(a ^ b for a, b in zip(np.packbits(hashed).tobytes(), pad))
    assert check.tag(data, seed, EPS) == expected


def test_equal_blocks_pass_and_any_flipped_bit_fails() -> None:
    data = block(1)
    seed = check.new_seed(len(data), EPS)
    tag = check.tag(data, seed, EPS)
    assert check.same(data, seed, EPS, tag)
    for position in (0, 3, 7 * 8, 100 * 8 + 5, len(data) * 8 - 1):
        flipped = bytearray(data)
        flipped[position // 8] ^= 1 << (position % 8)
        assert not check.same(bytes(flipped), seed, EPS, tag), position


def test_the_kept_block_drops_exactly_the_pad() -> None:
    data = block(2)
    assert check.kept(data, EPS) == data[check.tag_bytes(EPS):]


def test_the_tag_is_uniform_whatever_the_kept_bits() -> None:
    """With the pad uniform, the tag of a fixed ``rest`` is uniform: over 4096 random
    pads, each of the tag's 56 bits is 1 about half the time (no bias to learn from)."""
    rng = np.random.default_rng(7)
    rest = block(3, 64)
    seed = check.new_seed(64 + check.tag_bytes(EPS), EPS)
    tags = np.array([np.unpackbits(np.frombuffer(check.tag(rng.bytes(7) + rest, seed, EPS), np.uint8))
                     for _ in range(4096)])
    assert np.all(np.abs(tags.mean(axis=0) - 0.5) < 0.05)


def test_a_short_block_or_wrong_seed_is_refused() -> None:
    with pytest.raises(ValueError):
        check.tag(b"\x00" * 7, b"", EPS)
    with pytest.raises(ValueError):
        check.tag(block(4), b"\x00", EPS)
