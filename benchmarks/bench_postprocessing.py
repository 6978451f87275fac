"""Reconciliation efficiency and post-processing throughput on one core.

Run:  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 \
      .venv/bin/python benchmarks/bench_postprocessing.py [--frames 512]

f = leaked parity bits / (n h(e)) per 10^4-bit frame, with e the frame's actual
error rate (binary symmetric channel, QBER 1/2/5 %).  Throughput counts sifted bits
through Cascade + verification + Toeplitz privacy amplification (output = half the
input, as a typical compression), both parties computed in this one process.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from adapters.qkd_sim.cascade import reconcile  # noqa: E402
from adapters.qkd_sim.entropy import binary_entropy  # noqa: E402
from adapters.qkd_sim.postprocessing import (FRAME_BITS, privacy_amplification,  # noqa: E402
                                             reconcile_frames)


def bsc_frames(frames: int, qber: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    alice = rng.integers(0, 2, (frames, FRAME_BITS), dtype=np.uint8)
    return alice, alice ^ (rng.random(alice.shape) < qber).astype(np.uint8)


def efficiency(frames: int, qber: float) -> None:
    alice, bob = bsc_frames(frames, qber, seed=int(qber * 1e4))
    fixed, channel = reconcile(alice, bob, qber, public_seed=1)
    e = np.count_nonzero(alice != bob, axis=1) / FRAME_BITS
    f = channel.leaked_bits / (FRAME_BITS * binary_entropy(e))
    failed = int(np.count_nonzero(np.any(fixed != alice, axis=1)))
    print(f"QBER {qber:.0%}: f mean {f.mean():.4f}  std {f.std():.4f}  min {f.min():.4f}  "
          f"max {f.max():.4f}  frames {frames}  residual-error frames {failed}")


def throughput(frames: int, qber: float) -> None:
    alice, bob = bsc_frames(frames, qber, seed=99)
    start = time.process_time()
    rec = reconcile_frames(alice, bob, qber, 1e-15, np.random.default_rng(2))
    rec_s = time.process_time() - start
    seed = np.random.default_rng(3).integers(0, 2, rec.alice.size + rec.alice.size // 2 - 1, dtype=np.uint8)
    start = time.process_time()
    privacy_amplification(rec.alice, seed, rec.alice.size // 2)
    pa_alice_s = time.process_time() - start
    privacy_amplification(rec.bob, seed, rec.alice.size // 2)
    pa_both_s = time.process_time() - start
    total = rec_s + pa_both_s
    print(f"QBER {qber:.0%}, {alice.size} sifted bits: reconciliation+verification {rec_s:.2f} s, "
          f"PA {pa_alice_s:.2f} s per party; both parties on one core "
          f"{alice.size / total / 1e6:.2f} Mbit/s; one party's PA + shared reconciliation "
          f"{alice.size / (rec_s + pa_alice_s) / 1e6:.2f} Mbit/s (f {rec.efficiency:.4f}, "
          f"failed frames {rec.frames_failed})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=512)
    args = parser.parse_args()
    for qber in (0.01, 0.02, 0.05):
        efficiency(args.frames, qber)
    for qber in (0.01, 0.03, 0.05):
        throughput(args.frames, qber)


if __name__ == "__main__":
    main()
