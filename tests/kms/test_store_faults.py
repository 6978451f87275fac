"""The store under Redis faults during traffic: a Redis Cluster master killed with
SIGKILL while reservations and claims run (its replica is promoted), and a single Redis
killed with SIGKILL and restarted from its AOF. After each: every reservation the store
confirmed can still be claimed (once), and no claimed key can be claimed again."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from kms.errors import KeysNotFound, QkmsError
from kms.keys import Key, Provenance, Reservation
from kms.sealing import KEK_SIZE_BYTES, Sealer
from kms.storage import Storage, open_storage
from tests.support.conditions import wait_until
from tests.support.processes import RedisServerProcess, free_port
from tests.support.redis_topologies import ClusterSet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KME, MASTER, SLAVE = "KME-1", "sae-1", "sae-2"
KEK = os.urandom(KEK_SIZE_BYTES)


class StoreTraffic:
    """A thread that reserves batches of four keys and claims two of each, recording
    what the store confirmed (returned without error) and when calls failed."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.reserved: set[str] = set()
        self.claimed: set[str] = set()
        self.uncertain: set[str] = set()  # a call failed: applied or not, unknown
        self.failures = 0
        self.last_ok = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stopping.is_set():
            batch = [Key(str(uuid.uuid4()), os.urandom(32), Provenance(("csprng",))) for _ in range(4)]
            ids = [k.key_id for k in batch]
            try:
                self.storage.store.reserve([Reservation(k, MASTER, frozenset({SLAVE})) for k in batch], 600)
            except QkmsError:
                self._failed(ids)
                continue
            self.reserved.update(ids)
            try:
                self.storage.store.claim(ids[:2], SLAVE, MASTER)
            except QkmsError:
                self.reserved.difference_update(ids[:2])
                self._failed(ids[:2])
                continue
            self.reserved.difference_update(ids[:2])
            self.claimed.update(ids[:2])
            self.last_ok = time.monotonic()

    def _failed(self, ids: list[str]) -> None:
        self.uncertain.update(ids)
        self.failures += 1
        self.stopping.wait(0.05)

    def __enter__(self) -> "StoreTraffic":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)


def survive(storage: Storage, fault: Callable[[], None]) -> tuple[int, int, float, int]:
    """Run traffic, apply ``fault`` mid-way, wait until traffic flows again; then check
    every confirmed reservation and claim. Returns (confirmed reservations lost, claimed
    keys that came back, seconds until traffic flowed again, failed calls)."""
    with StoreTraffic(storage) as traffic:
        wait_until(lambda: len(traffic.claimed) >= 100, "traffic before the fault", 30)
        fault_at = time.monotonic()
        fault()
        wait_until(lambda: traffic.last_ok > fault_at and traffic.failures > 0 or traffic.last_ok > fault_at + 1,
                   "traffic to flow again", 60)
        recovered_s = traffic.last_ok - fault_at
        claimed_before = len(traffic.claimed)
        wait_until(lambda: len(traffic.claimed) >= claimed_before + 40, "traffic after recovery", 30)
    lost = sum(1 for key_id in traffic.reserved if not _claim(storage, key_id))
    came_back = sum(1 for key_id in traffic.claimed if _claim(storage, key_id))
    return lost, came_back, recovered_s, traffic.failures


def _claim(storage: Storage, key_id: str) -> bool:
    try:
        return len(storage.store.claim([key_id], SLAVE, MASTER)) == 1
    except KeysNotFound:
        return False


@pytest.fixture
def cluster(tmp_path) -> Iterator[ClusterSet]:
    topology = ClusterSet(tmp_path / "cluster")
    try:
        yield topology.start()
    finally:
        topology.stop()


def test_a_cluster_master_killed_during_traffic_loses_nothing(cluster: ClusterSet) -> None:
    """The promoted replica has no replica of its own until the killed node is back (as
    a supervisor restarts it): with ``min_replicas_acked`` 1 writes wait for that."""
    storage = open_storage(cluster.settings(min_replicas_acked=1, replica_ack_timeout_ms=1000), KME,
                           Sealer(KEK, KME))
    slot_key = f"qkms:{{{KME}}}:held"
    victim = cluster.master_of(slot_key)

    def fail_over_and_restart() -> None:
        victim.kill()
        wait_until(lambda: _promoted(cluster, slot_key, victim), "the replica to be promoted", 30)
        victim.start()

    try:
        lost, came_back, recovered_s, failures = survive(storage, fail_over_and_restart)
    finally:
        storage.close()
    assert (lost, came_back) == (0, 0)
    print(f"cluster master killed: {failures} failed calls, traffic again after {recovered_s:.2f} s, "
          f"{lost} confirmed reservations lost, {came_back} claimed keys back")


def _promoted(cluster: ClusterSet, key: str, victim) -> bool:
    try:
        return cluster.master_of(key) is not victim
    except RuntimeError:  # no live master for the slot yet
        return False


def test_redis_killed_and_restarted_from_its_aof_during_traffic(tmp_path) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServerProcess(free_port(), tmp_path / "redis").start()
    storage = open_storage(server.url, KME, Sealer(KEK, KME))

    def crash_and_restart() -> None:
        server.process.kill()
        server.process.wait()
        server.start()

    try:
        lost, came_back, recovered_s, failures = survive(storage, crash_and_restart)
    finally:
        storage.close()
        server.stop()
    assert (lost, came_back) == (0, 0)
    print(f"redis restarted from AOF: {failures} failed calls, traffic again after {recovered_s:.2f} s, "
          f"{lost} confirmed reservations lost, {came_back} claimed keys back")
