"""The ChangeLog contract (kms/changes.py), run against every backend: the in-memory
twin and Redis (embedded, external, Sentinel, Cluster)."""

from __future__ import annotations

import pytest

from kms.changes import Change, ChangeLog, digest
from kms.errors import StoreError
from tests.support.backends import Backend

FIRST = Change("c-1", 1, "A", "ops", 1_767_225_600.0, "put-sae", {"id": "sae-x", "node": "A"})
SECOND = Change("c-2", 2, "B", "ops", 1_767_225_601.5, "set-policy", {"link": "A-B", "policy": "hybrid"},
                effective_at=1_767_225_603.5)
SAME_VERSION_OTHER_ORIGIN = Change("c-0", 2, "A", "ops", 1_767_225_601.0, "set-link-state",
                                   {"link": "A-B", "state": "paused"})


@pytest.fixture
def log(backend: Backend) -> ChangeLog:
    return backend.open("KME-A").changes


def test_a_new_log_is_empty_at_version_zero(log: ChangeLog) -> None:
    assert log.version() == 0
    assert log.read() == (0, [])
    assert log.done() == frozenset()


def test_added_changes_read_back_equal_in_total_order(log: ChangeLog) -> None:
    assert log.add([SECOND, FIRST, SAME_VERSION_OTHER_ORIGIN]) == [SECOND, FIRST, SAME_VERSION_OTHER_ORIGIN]
    version, changes = log.read()
    assert changes == [FIRST, SAME_VERSION_OTHER_ORIGIN, SECOND]  # version, then origin
    assert version == log.version() >= 1


def test_a_held_change_is_never_replaced_nor_counted_twice(log: ChangeLog) -> None:
    log.add([FIRST])
    version = log.version()
    impostor = Change(FIRST.change_id, 9, "B", "mallory", 0.0, "remove-sae", {"id": "sae-x"})
    assert log.add([impostor, SECOND]) == [SECOND]
    assert log.read()[1] == [FIRST, SECOND]
    assert log.version() > version
    assert log.add([FIRST, SECOND]) == []
    assert log.add([]) == []


def test_adding_nothing_new_leaves_the_version(log: ChangeLog) -> None:
    log.add([FIRST])
    version = log.version()
    log.add([FIRST])
    assert log.version() == version


def test_done_marks_are_kept_once(log: ChangeLog) -> None:
    assert log.mark_done("c-1") is True
    assert log.mark_done("c-1") is False
    assert log.mark_done("c-2") is True
    assert log.done() == frozenset({"c-1", "c-2"})


def test_each_node_has_its_own_log(backend: Backend, log: ChangeLog) -> None:
    log.add([FIRST])
    other = backend.open("KME-B").changes
    assert other.read() == (0, [])
    assert backend.open("KME-A").changes.read()[1] == [FIRST]


def test_two_logs_with_the_same_changes_have_the_same_digest(backend: Backend, log: ChangeLog) -> None:
    other = backend.open("KME-B").changes
    log.add([FIRST, SECOND])
    other.add([SECOND])
    assert digest(log.read()[1]) != digest(other.read()[1])
    other.add([FIRST])
    assert digest(log.read()[1]) == digest(other.read()[1])


def test_redis_log_lives_in_the_nodes_namespace(redis_backend) -> None:
    changes = redis_backend.open("KME-A").changes
    changes.add([FIRST])
    changes.mark_done("c-1")
    names = {name.decode() for name in redis_backend.raw.keys("*")}
    assert names == {"qkms:{KME-A}:changes", "qkms:{KME-A}:changes:version", "qkms:{KME-A}:changes:done"}


def test_redis_down_is_a_store_error(tmp_path) -> None:
    from kms.sealing import KEK_SIZE_BYTES, Sealer
    from kms.storage import open_storage

    changes = open_storage(f"unix://{tmp_path}/no.sock", "KME-A", Sealer(bytes(KEK_SIZE_BYTES), "KME-A")).changes
    for call in (changes.version, changes.read, changes.done, lambda: changes.add([FIRST])):
        with pytest.raises(StoreError):
            call()
