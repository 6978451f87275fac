"""What Redis's asynchronous replication could lose at a failover, and what
``redis.min_replicas_acked`` does about it (Redis WAIT): a decision no replica holds is
never acted on. Real redis-server processes: a master, a replica and three sentinels.

A fault test kills the master with SIGKILL between writes: after Sentinel promotes the
replica, every reservation the store confirmed is still there and no claimed key can
be claimed again. Another cuts the replication link first (tests/support/replication_link.py),
so the replica lags for certain: without WAIT the master confirms writes a failover then
loses; with it those writes are refused and nothing confirmed is lost."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from kms.errors import KeysNotFound, Unavailable
from kms.keys import Key, KeyBlock, Provenance, Reservation
from kms.storage import Storage, open_storage
from kms.storage.redis_client import Replication, redis_client
from kms.sealing import KEK_SIZE_BYTES, Sealer
from tests.support.conditions import wait_until
from tests.support.redis_topologies import SentinelSet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KME, MASTER, SLAVE = "KME-1", "sae-1", "sae-2"
KEK = os.urandom(KEK_SIZE_BYTES)
#: Where a write must reach the replica: long enough for a loaded machine's replica to
#: be scheduled and fsync (the node's default, 200 ms, is for a quiet one).
ACK_TIMEOUT_MS = 5000


def keys(count: int) -> list[Key]:
    return [Key(str(uuid.uuid4()), os.urandom(32), Provenance(("csprng",))) for _ in range(count)]


def reserve(storage: Storage, batch: list[Key]) -> list[str]:
    storage.store.reserve([Reservation(k, MASTER, frozenset({SLAVE})) for k in batch], 600)
    return [k.key_id for k in batch]


@pytest.fixture
def sentinels(tmp_path) -> Iterator[SentinelSet]:
    topology = SentinelSet(tmp_path / "sentinel")
    try:
        yield topology.start()
    finally:
        topology.stop()


@pytest.fixture
def lagging(tmp_path) -> Iterator[SentinelSet]:
    """A Sentinel set whose replica replicates through a link the test can cut."""
    topology = SentinelSet(tmp_path / "sentinel", cuttable_link=True)
    try:
        yield topology.start()
    finally:
        topology.stop()


def open_on(topology: SentinelSet, **settings) -> Storage:
    return open_storage(topology.settings(**settings), KME, Sealer(KEK, KME))


def test_with_a_replica_to_confirm_writes_go_through(sentinels: SentinelSet) -> None:
    storage = open_on(sentinels, min_replicas_acked=1, replica_ack_timeout_ms=ACK_TIMEOUT_MS)
    ids = reserve(storage, keys(3))
    assert len(storage.store.claim(ids, SLAVE, MASTER)) == 3
    storage.pools.add_blocks("A-B", KME, [KeyBlock("A-B:0", os.urandom(64), 0)])
    assert len(storage.pools.carve("A-B", KME, [32])) == 1


def test_an_unreplicated_reservation_is_withdrawn_and_fails(sentinels: SentinelSet) -> None:
    storage = open_on(sentinels, min_replicas_acked=2, replica_ack_timeout_ms=50)  # only one replica exists
    batch = keys(2)
    with pytest.raises(Unavailable):
        reserve(storage, batch)
    assert storage.store.pending_count() == 0 and storage.store.pending_count(MASTER) == 0
    with pytest.raises(KeysNotFound):
        storage.store.claim([batch[0].key_id], SLAVE, MASTER)


def test_an_unreplicated_claim_or_carve_hands_nothing_out(sentinels: SentinelSet) -> None:
    ids = reserve(open_on(sentinels), keys(2))
    open_on(sentinels).pools.add_blocks("A-B", KME, [KeyBlock("A-B:0", os.urandom(64), 0)])
    strict = open_on(sentinels, min_replicas_acked=2, replica_ack_timeout_ms=50)
    with pytest.raises(Unavailable):
        strict.store.claim(ids, SLAVE, MASTER)
    with pytest.raises(Unavailable):
        strict.pools.carve("A-B", KME, [32])


def test_after_a_failover_nothing_confirmed_is_lost_and_nothing_claimed_comes_back(sentinels: SentinelSet) -> None:
    storage = open_on(sentinels, min_replicas_acked=1, replica_ack_timeout_ms=ACK_TIMEOUT_MS)
    confirmed = reserve(storage, keys(20))
    claimed = confirmed[:8]
    assert len(storage.store.claim(claimed, SLAVE, MASTER)) == 8
    old_master = sentinels.current_master_port()
    sentinels.master.kill()
    wait_until(lambda: sentinels.failed_over_from(old_master), "every sentinel to hold the promoted replica as a healthy master", 60)
    after = open_on(sentinels)
    assert after.store.pending_count() == 12
    for key_id in claimed:
        with pytest.raises(KeysNotFound):
            after.store.claim([key_id], SLAVE, MASTER)
    assert len(after.store.claim(confirmed[8:], SLAVE, MASTER)) == 12


def test_a_lagging_replica_loses_unwaited_writes_at_failover_and_waited_ones_are_refused(lagging: SentinelSet) -> None:
    strict = open_on(lagging, min_replicas_acked=1, replica_ack_timeout_ms=ACK_TIMEOUT_MS)
    replicated = reserve(strict, keys(10))
    lagging.link.cut()
    refused = keys(2)
    with pytest.raises(Unavailable):
        reserve(open_on(lagging, min_replicas_acked=1, replica_ack_timeout_ms=300), refused)
    unwaited = reserve(open_on(lagging), keys(3))  # confirmed by the master alone
    assert open_on(lagging).store.pending_count() == 13
    old_master = lagging.current_master_port()
    lagging.master.kill()
    lagging.link.close()
    wait_until(lambda: lagging.failed_over_from(old_master), "every sentinel to hold the promoted replica as a healthy master", 60)
    after = open_on(lagging)
    assert after.store.pending_count() == 10
    for key_id in unwaited + [key.key_id for key in refused]:
        with pytest.raises(KeysNotFound):
            after.store.claim([key_id], SLAVE, MASTER)
    assert len(after.store.claim(replicated, SLAVE, MASTER)) == 10


def test_the_check_covers_a_write_made_on_another_connection(lagging: SentinelSet) -> None:
    """WAIT counts the writes of its own connection only; a pooled client can send it on
    another one than the write's (another thread took that back). The check must still
    wait for the write, not pass at once on a connection that wrote nothing."""
    key = f"qkms:{{{KME}}}:res:{uuid.uuid4()}"
    writer, checker = redis_client(lagging.settings()), redis_client(lagging.settings())
    replication = Replication(checker, min_acked=1, timeout_ms=ACK_TIMEOUT_MS)
    writer.set(key, b"decided")
    replication.confirm(key)  # the replica follows: confirmed
    lagging.link.cut()
    writer.set(key, b"decided again")
    with pytest.raises(Unavailable):
        Replication(checker, min_acked=1, timeout_ms=300).confirm(key)
    writer.close()
    checker.close()
