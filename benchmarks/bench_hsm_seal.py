"""Benchmark: seals and unseals per second of one process through a KEK in an HSM
(SoftHSM2, a throwaway token in a temporary directory) against the same through a KEK
in memory, 32-byte keys sealed as the node seals them (kms.sealing.Sealer). Every seal
or unseal is one PKCS#11 round trip to the token; with a network HSM each also pays the
network's latency.

    .venv/bin/python benchmarks/bench_hsm_seal.py --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kms.hsm import Pkcs11Kek, Pkcs11Token  # noqa: E402
from kms.keyring import Keyring  # noqa: E402
from kms.sealing import Sealer  # noqa: E402
from tests.support.softhsm import make_softhsm  # noqa: E402

KEY_ID = "6f1c0b4e-8d1f-4a55-9d3e-0d4b2c1a9e77"


def rate(operation, seconds: float) -> float:
    """Calls of ``operation`` per second over ``seconds``."""
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            operation()
        count += 100
    return count / elapsed


def measure(sealer: Sealer, seconds: float) -> dict[str, float]:
    material = os.urandom(32)
    sealed = sealer.seal(material, KEY_ID)
    return {"seals_per_s": round(rate(lambda: sealer.seal(material, KEY_ID), seconds)),
            "unseals_per_s": round(rate(lambda: sealer.unseal(sealed, KEY_ID), seconds))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="Seconds per measurement.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hsm = make_softhsm(Path(tmp))
        os.environ.update(hsm.env())
        token = Pkcs11Token(hsm.module, hsm.token_label, hsm.pin_env)
        token.generate_key("bench")
        results = {"softhsm2": measure(Sealer(Keyring(Pkcs11Kek(token, "bench")), "KME-1"), args.seconds),
                   "in_memory": measure(Sealer(os.urandom(32), "KME-1"), args.seconds)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
