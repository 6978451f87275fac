"""The LinkManagerRecords contract (kms/link_manager_state.py), run against every
backend: the in-memory twin and Redis on both kinds of server."""

from __future__ import annotations

import time

import pytest

from kms.errors import StoreError
from kms.link_manager_state import Heartbeat, LinkManagerRecords, SupervisorRecord
from tests.support.backends import Backend
from tests.support.conditions import wait_until

RECORD = SupervisorRecord("restarting", 4242, 3, 1_767_225_600.5, -9, 2.0)


@pytest.fixture
def records(backend: Backend) -> LinkManagerRecords:
    return backend.open("KME-A").link_manager


def test_nothing_is_recorded_at_first(records: LinkManagerRecords) -> None:
    assert records.read() == (None, None)


def test_records_read_back_equal(records: LinkManagerRecords) -> None:
    heartbeat = Heartbeat(4242, 1_767_225_601.25)
    records.beat(heartbeat, ttl_s=60)
    records.record(RECORD)
    assert records.read() == (heartbeat, RECORD)


def test_a_newer_record_replaces_the_older_one(records: LinkManagerRecords) -> None:
    records.record(RECORD)
    running = SupervisorRecord("running", 4243, 3, RECORD.since + 2, -9)
    records.beat(Heartbeat(4242, 1.0), ttl_s=60)
    records.beat(Heartbeat(4243, 2.0), ttl_s=60)
    records.record(running)
    assert records.read() == (Heartbeat(4243, 2.0), running)


def test_the_heartbeat_is_gone_after_its_ttl(records: LinkManagerRecords) -> None:
    records.record(RECORD)
    records.beat(Heartbeat(4242, time.time()), ttl_s=0.2)
    wait_until(lambda: records.read()[0] is None, "the heartbeat to expire after its 0.2 s TTL", 30, poll_s=0.02)
    assert records.read() == (None, RECORD)  # the supervisor record does not expire


def test_each_node_has_its_own_records(backend: Backend, records: LinkManagerRecords) -> None:
    records.record(RECORD)
    assert backend.open("KME-B").link_manager.read() == (None, None)
    assert backend.open("KME-A").link_manager.read() == (None, RECORD)


def test_redis_records_live_in_the_nodes_namespace(redis_backend) -> None:
    records = redis_backend.open("KME-A").link_manager
    records.beat(Heartbeat(1, 2.0), ttl_s=30)
    records.record(RECORD)
    names = {name.decode() for name in redis_backend.raw.keys("*")}
    assert names == {"qkms:{KME-A}:linkd:heartbeat", "qkms:{KME-A}:linkd:supervisor"}
    assert 0 < redis_backend.raw.pttl("qkms:{KME-A}:linkd:heartbeat") <= 30_000


def test_redis_down_is_a_store_error(tmp_path) -> None:
    from kms.sealing import KEK_SIZE_BYTES, Sealer
    from kms.storage import open_storage

    records = open_storage(f"unix://{tmp_path}/no.sock", "KME-A", Sealer(bytes(KEK_SIZE_BYTES), "KME-A")).link_manager
    with pytest.raises(StoreError):
        records.read()
    with pytest.raises(StoreError):
        records.beat(Heartbeat(1, 2.0), ttl_s=1)
