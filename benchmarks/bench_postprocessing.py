"""Reconciliation efficiency and post-processing throughput on one core.

Run:  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 \
      .venv/bin/python benchmarks/bench_postprocessing.py [--frames 512] [--repeats 3]

f = leaked parity bits / (n h(e)) per 10^4-bit frame, with e the frame's actual
error rate (binary symmetric channel, QBER 1/2/5 %).  Throughput counts sifted bits
through Cascade + verification + privacy amplification ([I | T] Toeplitz, output = half
the input), both parties computed in this one process, CPU time after a warm-up run
(compiled kernels loaded, FFT plans made).
Each party hashes its own key; the public seed's transform is computed once and shared
("shared seed"), or once per party as two separate machines would ("seed per party").
Monte Carlo speed: benchmarks/bench_montecarlo.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from adapters.qkd_sim.cascade import reconcile  # noqa: E402
from adapters.qkd_sim.entropy import binary_entropy  # noqa: E402
from adapters.qkd_sim.postprocessing import (FRAME_BITS, privacy_amplification,  # noqa: E402
                                             reconcile_frames)
from adapters.qkd_sim.toeplitz import ToeplitzHash  # noqa: E402


QBERS = (0.01, 0.02, 0.05)  # the operating points


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


def warm_up(frames: int) -> None:
    """Load the compiled kernels and plan the FFTs of this key size outside the timings."""
    alice, bob = bsc_frames(frames, 0.02, seed=98)
    rec = reconcile_frames(alice, bob, 0.02, 1e-15, np.random.default_rng(1))
    seed = np.random.default_rng(3).integers(0, 2, rec.alice.size - 1, dtype=np.uint8)
    privacy_amplification(rec.alice, seed, rec.alice.size // 2)


def throughput(frames: int, qber: float) -> dict:
    """Sifted bits per CPU second through reconciliation, verification and privacy
    amplification of ``frames`` frames at ``qber``, and the parts' CPU times."""
    alice, bob = bsc_frames(frames, qber, seed=99)
    rec_s, rec = _timed(reconcile_frames, alice, bob, qber, 1e-15, np.random.default_rng(2))
    out_bits = rec.alice.size // 2
    seed = np.random.default_rng(3).integers(0, 2, rec.alice.size - 1, dtype=np.uint8)
    seed_s, pa = _timed(ToeplitzHash, seed, rec.alice.size - out_bits, out_bits)
    pa_alice_s, alice_key = _timed(privacy_amplification, rec.alice, pa, out_bits)
    pa_bob_s, bob_key = _timed(privacy_amplification, rec.bob, pa, out_bits)
    assert alice_key == bob_key
    shared = rec_s + seed_s + pa_alice_s + pa_bob_s
    mbps = lambda seconds: round(alice.size / seconds / 1e6, 2)
    return {"qber": qber, "sifted_bits": int(alice.size), "reconciliation_s": round(rec_s, 3),
            "seed_transform_s": round(seed_s, 3), "pa_alice_s": round(pa_alice_s, 3), "pa_bob_s": round(pa_bob_s, 3),
            "both_parties_mbps": mbps(shared), "seed_per_party_mbps": mbps(shared + seed_s),
            "one_party_mbps": mbps(rec_s + seed_s + pa_alice_s), "efficiency": round(rec.efficiency, 4),
            "failed_frames": int(rec.frames_failed)}


def throughput_line(result: dict) -> str:
    return (f"QBER {result['qber']:.0%}, {result['sifted_bits']} sifted bits: reconciliation+verification "
            f"{result['reconciliation_s']:.3f} s, PA seed transform {result['seed_transform_s']:.3f} s, "
            f"PA {result['pa_alice_s']:.3f} / {result['pa_bob_s']:.3f} s (Alice / Bob); "
            f"both parties on one core {result['both_parties_mbps']:.2f} Mbit/s (shared seed), "
            f"{result['seed_per_party_mbps']:.2f} Mbit/s (seed per party); one party "
            f"{result['one_party_mbps']:.2f} Mbit/s (f {result['efficiency']:.4f}, "
            f"failed frames {result['failed_frames']})")


def _timed(fn, *args):
    start = time.process_time()
    result = fn(*args)
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per QBER; the median is the figure (one run can catch a page-fault or cache storm)")
    args = parser.parse_args()
    for qber in QBERS:
        efficiency(args.frames, qber)
    warm_up(args.frames)
    for qber in QBERS:
        runs = [throughput(args.frames, qber) for _ in range(args.repeats)]
        for result in runs:
            print(throughput_line(result), flush=True)
        print(median_line(runs), flush=True)


def median_line(runs: list[dict]) -> str:
    """The median of ``runs``' both-party rates (shared seed, seed per party)."""
    shared = statistics.median(run["both_parties_mbps"] for run in runs)
    per_party = statistics.median(run["seed_per_party_mbps"] for run in runs)
    return (f"QBER {runs[0]['qber']:.0%}: median of {len(runs)} runs, both parties on one core "
            f"{shared:.2f} Mbit/s (shared seed), {per_party:.2f} Mbit/s (seed per party)")


if __name__ == "__main__":
    main()
