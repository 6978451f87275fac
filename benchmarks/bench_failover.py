"""What Redis's asynchronous replication loses at a Sentinel failover, with and without
``redis.min_replicas_acked`` (Redis WAIT after each decisive write).

Per trial: a fresh master + replica + three sentinels (Debian redis-server on loopback),
a writer thread reserving keys as fast as it can, the master SIGKILLed mid-stream, and
after Sentinel promotes the replica a count of the reservations the store had confirmed
that the new master does not hold.

On loopback the replica keeps up, so a plain kill loses little or nothing. The ``lag``
trials make the replica lag for certain: the replication link (a forwarder,
tests/support/replication_link.py) is cut ``--lag-s`` seconds before the kill, so every
write of those seconds reaches the master only.

    .venv/bin/python benchmarks/bench_failover.py [--trials 3] [--lag-s 1]
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


def trial(root: Path, min_replicas_acked: int, lag_s: float | None) -> tuple[int, int, int, float]:
    """(confirmed reservations, of them confirmed while the link was cut, of them lost,
    seconds until the promoted master took writes); with ``lag_s`` the replication link is
    cut that long before the master is killed."""
    topology = SentinelSet(root, cuttable_link=lag_s is not None).start()
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
        before_cut = None
        if lag_s is not None:
            topology.link.cut()
            before_cut = len(confirmed)
            time.sleep(lag_s)
        topology.master.kill()
        killed_at = time.monotonic()
        stop.set()
        writer.join()
        if topology.link is not None:
            topology.link.close()
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
        return len(confirmed), len(confirmed) - (before_cut or len(confirmed)), lost, promoted_s
    finally:
        topology.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--lag-s", type=float, default=1.0, help="how long the replication link is cut in lag trials")
    args = parser.parse_args()
    print("| replica | min_replicas_acked | trial | confirmed | of them while cut | lost | failover s |")
    print("|---|---|---|---|---|---|---|")
    for lag_s in (None, args.lag_s):
        replica = "in step" if lag_s is None else f"cut {lag_s:g} s before the kill"
        for acked in (0, 1):
            for index in range(args.trials):
                with tempfile.TemporaryDirectory() as root:
                    confirmed, while_cut, lost, promoted_s = trial(Path(root), acked, lag_s)
                print(f"| {replica} | {acked} | {index + 1} | {confirmed} | {while_cut if lag_s else '-'} | {lost} "
                      f"| {promoted_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
