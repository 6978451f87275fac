"""What Redis's asynchronous replication loses at a Sentinel failover, with and without
``redis.min_replicas_acked`` (Redis WAIT after each decisive write).

Per trial: a fresh master + replica + three sentinels (Debian redis-server on loopback),
a writer thread reserving keys as fast as it can, the master SIGKILLed mid-stream, and
after Sentinel promotes the replica a count of the reservations the store had confirmed
that the new master does not hold.

    .venv/bin/python benchmarks/bench_failover.py [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kms.errors import KeysNotFound, QkmsError  # noqa: E402
from kms.keys import Key, Provenance, Reservation  # noqa: E402
from kms.sealing import KEK_SIZE_BYTES, Sealer  # noqa: E402
from kms.storage import open_storage  # noqa: E402
from tests.support.redis_topologies import SentinelSet  # noqa: E402

KME, MASTER, SLAVE = "KME-1", "sae-1", "sae-2"


def trial(root: Path, min_replicas_acked: int) -> tuple[int, int, float]:
    """(confirmed reservations, of them lost, seconds until the promoted master took writes)."""
    topology = SentinelSet(root).start()
    sealer = Sealer(os.urandom(KEK_SIZE_BYTES), KME)
    try:
        storage = open_storage(topology.settings(min_replicas_acked=min_replicas_acked,
                                                 replica_ack_timeout_ms=1000), KME, sealer)
        confirmed, stop = [], threading.Event()

        def write() -> None:
            while not stop.is_set():
                key = Key(str(uuid.uuid4()), os.urandom(32), Provenance(("csprng",)))
                try:
                    storage.store.reserve([Reservation(key, MASTER, frozenset({SLAVE}))], 600)
                    confirmed.append(key.key_id)
                except QkmsError:
                    pass

        writer = threading.Thread(target=write)
        writer.start()
        while len(confirmed) < 2000:
            time.sleep(0.01)
        old = topology.current_master_port()
        topology.master.kill()
        killed_at = time.monotonic()
        stop.set()
        writer.join()
        while topology.current_master_port() == old:
            time.sleep(0.05)
        after = open_storage(topology.settings(), KME, sealer)
        while True:
            try:
                after.store.pending_count()
                break
            except QkmsError:
                time.sleep(0.05)
        promoted_s = time.monotonic() - killed_at
        lost = 0
        for key_id in confirmed:
            try:
                after.store.claim([key_id], SLAVE, MASTER)
            except KeysNotFound:
                lost += 1
        storage.close()
        after.close()
        return len(confirmed), lost, promoted_s
    finally:
        topology.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    print("| min_replicas_acked | trial | confirmed | lost | failover s |")
    print("|---|---|---|---|---|")
    for acked in (0, 1):
        for index in range(args.trials):
            with tempfile.TemporaryDirectory() as root:
                confirmed, lost, promoted_s = trial(Path(root), acked)
            print(f"| {acked} | {index + 1} | {confirmed} | {lost} | {promoted_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
