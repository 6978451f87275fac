"""The KeyStore contract (kms/store.py), run against RedisKeyStore on every kind of Redis
the product supports: the embedded server and a separately started redis-server
(DESIGN.md sections 5 and 8)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest
import redis

from kms.embedded_redis import EmbeddedRedis
from kms.errors import (
    BadRequest,
    DuplicateKeyId,
    KeysNotFound,
    StoreError,
    StoreFull,
    Unauthorized,
)
from kms.keys import Key, Provenance, Reservation
from kms.node import redis_client
from kms.redis_store import RedisKeyStore
from kms.sealing import KEK_SIZE_BYTES, Sealer
from kms.store import KeyStore
from tests.support.processes import RedisServerProcess
from tests.support.at_rest import dump, encodings
from tests.support.races import race

pytestmark = pytest.mark.integration

KME = "KME-1"
MASTER = "sae-1"
SLAVE = "sae-2"
TTL_S = 600
RACE_KEYS = 2000
RACE_WORKERS = 8
RACE_ATTEMPTS = 300


def open_store(url: str, kek: bytes, kme_id: str = KME, capacity_keys: int | None = None) -> RedisKeyStore:
    return RedisKeyStore(redis_client(url), Sealer(kek, kme_id), kme_id, capacity_keys)


@pytest.fixture
def store(redis_url: str, kek: bytes) -> Iterator[RedisKeyStore]:
    store = open_store(redis_url, kek)
    yield store
    store.close()


def new_keys(count: int, size_bytes: int = 32) -> list[Key]:
    """Fresh keys, each with its own provenance so a mix-up is visible."""
    return [Key(str(uuid.uuid4()), os.urandom(size_bytes),
                Provenance(("csprng",), ("os-urandom",), (KME, f"hop-{i}"))) for i in range(count)]


def reserve(store: KeyStore, keys: Sequence[Key], slaves: Sequence[str] = (SLAVE,),
            master: str = MASTER, ttl_s: int = TTL_S) -> list[str]:
    store.reserve([Reservation(key, master, frozenset(slaves)) for key in keys], ttl_s)
    return [key.key_id for key in keys]


def assert_same_keys(got: Sequence[Key], expected: Sequence[Key]) -> None:
    """Same ids, material and provenance, in the same order (material never printed)."""
    assert [k.key_id for k in got] == [k.key_id for k in expected]
    assert [k.provenance for k in got] == [k.provenance for k in expected]
    assert all(g.material == e.material for g, e in zip(got, expected)), "material differs"


# --- reserve and claim -----------------------------------------------------------------


def test_backend_answers(store: RedisKeyStore) -> None:
    assert store.ping() is True


def test_claim_returns_exactly_what_was_reserved_in_the_order_asked(store: RedisKeyStore) -> None:
    keys = new_keys(6, size_bytes=64)
    reserve(store, keys)
    asked = [keys[i] for i in (4, 0, 5, 2, 1, 3)]
    assert_same_keys(store.claim([k.key_id for k in asked], SLAVE, MASTER), asked)


def test_a_claimed_key_is_gone(store: RedisKeyStore, raw: redis.Redis) -> None:
    (key,) = new_keys(1)
    reserve(store, [key])
    store.claim([key.key_id], SLAVE, MASTER)
    with pytest.raises(KeysNotFound):
        store.claim([key.key_id], SLAVE, MASTER)
    assert raw.dbsize() == 0


def test_claim_with_one_unknown_id_consumes_nothing(store: RedisKeyStore) -> None:
    keys = new_keys(3)
    ids = reserve(store, keys)
    unknown = str(uuid.uuid4())
    with pytest.raises(KeysNotFound) as caught:
        store.claim([ids[0], unknown, ids[2]], SLAVE, MASTER)
    assert caught.value.details == [{"key_ID": unknown}]
    assert store.pending_count() == 3
    assert_same_keys(store.claim(ids, SLAVE, MASTER), keys)


def test_claim_by_a_non_slave_consumes_nothing(store: RedisKeyStore) -> None:
    keys = new_keys(2)
    ids = reserve(store, keys)
    for caller in ("sae-3", MASTER):
        with pytest.raises(Unauthorized):
            store.claim(ids, caller, MASTER)
    assert store.pending_count() == 2
    assert_same_keys(store.claim(ids, SLAVE, MASTER), keys)


def test_claim_across_keys_of_different_slaves_consumes_nothing(store: RedisKeyStore) -> None:
    mine, theirs = new_keys(2)
    reserve(store, [mine], slaves=[SLAVE])
    reserve(store, [theirs], slaves=["sae-3"])
    with pytest.raises(Unauthorized):
        store.claim([mine.key_id, theirs.key_id], SLAVE, MASTER)
    assert_same_keys(store.claim([mine.key_id], SLAVE, MASTER), [mine])
    assert_same_keys(store.claim([theirs.key_id], "sae-3", MASTER), [theirs])


def test_claim_naming_the_wrong_master_is_not_found_and_consumes_nothing(store: RedisKeyStore) -> None:
    keys = new_keys(2)
    ids = reserve(store, keys)
    with pytest.raises(KeysNotFound):
        store.claim(ids, SLAVE, "sae-3")
    assert_same_keys(store.claim(ids, SLAVE, MASTER), keys)


def test_every_slave_claims_once_and_the_key_goes_after_the_last(store: RedisKeyStore, raw) -> None:
    keys = new_keys(2)
    slaves = ["sae-2", "sae-3", "sae-4"]
    ids = reserve(store, keys, slaves=slaves)
    for index, slave in enumerate(slaves):
        assert_same_keys(store.claim(ids, slave, MASTER), keys)
        if index < len(slaves) - 1:
            assert store.pending_count() == 2
            with pytest.raises(Unauthorized):
                store.claim(ids, slave, MASTER)
    assert store.pending_count() == 0
    assert raw.dbsize() == 0
    with pytest.raises(KeysNotFound):
        store.claim(ids[:1], "sae-4", MASTER)


def test_a_repeated_key_id_in_one_claim_cannot_take_another_slaves_share(store: RedisKeyStore) -> None:
    (key,) = new_keys(1)
    reserve(store, [key], slaves=["sae-2", "sae-3"])
    try:
        store.claim([key.key_id, key.key_id], "sae-2", MASTER)
    except (BadRequest, Unauthorized, StoreError):
        pass
    assert_same_keys(store.claim([key.key_id], "sae-3", MASTER), [key])


def test_reserving_an_existing_key_id_stores_nothing_of_the_batch(store: RedisKeyStore) -> None:
    (existing,) = new_keys(1)
    reserve(store, [existing])
    before, after = new_keys(2)
    clash = Key(existing.key_id, os.urandom(32), Provenance(("other",)))
    with pytest.raises(DuplicateKeyId):
        reserve(store, [before, clash, after], slaves=["sae-3"])
    assert store.pending_count() == 1
    with pytest.raises(KeysNotFound):
        store.claim([before.key_id], "sae-3", MASTER)
    with pytest.raises(KeysNotFound):
        store.claim([after.key_id], "sae-3", MASTER)
    with pytest.raises(Unauthorized):
        store.claim([existing.key_id], "sae-3", MASTER)
    assert_same_keys(store.claim([existing.key_id], SLAVE, MASTER), [existing])


def test_a_key_id_repeated_within_one_batch_is_refused(store: RedisKeyStore, raw) -> None:
    first, = new_keys(1)
    second = Key(first.key_id, os.urandom(32), first.provenance)
    with pytest.raises(DuplicateKeyId):
        store.reserve([Reservation(first, MASTER, frozenset({"sae-2"})),
                       Reservation(second, MASTER, frozenset({"sae-3"}))], TTL_S)
    assert raw.dbsize() == 0


def test_reserving_nothing_is_a_no_op(store: RedisKeyStore) -> None:
    store.reserve([], TTL_S)
    assert store.pending_count() == 0


def test_reservations_expire_and_their_redis_key_is_gone(store: RedisKeyStore, raw: redis.Redis) -> None:
    ids = reserve(store, new_keys(2), ttl_s=1)
    assert store.pending_count() == 2
    deadline = time.monotonic() + 3.5
    while raw.dbsize() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert raw.dbsize() == 0
    assert store.pending_count() == 0
    with pytest.raises(KeysNotFound):
        store.claim(ids[:1], SLAVE, MASTER)


def test_every_stored_record_carries_its_ttl(store: RedisKeyStore, raw: redis.Redis) -> None:
    reserve(store, new_keys(3), slaves=["sae-2", "sae-3"], ttl_s=120)
    for name in raw.scan_iter():
        assert 0 < raw.ttl(name) <= 120


def test_pending_count_follows_reserve_and_claim(store: RedisKeyStore) -> None:
    assert store.pending_count() == 0
    ids = reserve(store, new_keys(3))
    reserve(store, new_keys(2), slaves=["sae-3", "sae-4"])
    assert store.pending_count() == 5
    store.claim(ids[:2], SLAVE, MASTER)
    assert store.pending_count() == 3


def test_nodes_sharing_one_redis_do_not_see_each_others_keys(redis_url: str, kek: bytes,
                                                             store: RedisKeyStore) -> None:
    ids = reserve(store, new_keys(2))
    other = open_store(redis_url, kek, "KME-2")
    try:
        assert other.pending_count() == 0
        with pytest.raises(KeysNotFound):
            other.claim(ids, SLAVE, MASTER)
    finally:
        other.close()
    assert store.pending_count() == 2


# --- capacity ---------------------------------------------------------------------------


@pytest.fixture
def small_store(redis_url: str, kek: bytes) -> Iterator[RedisKeyStore]:
    store = open_store(redis_url, kek, capacity_keys=5)
    yield store
    store.close()


def test_a_full_store_refuses_the_whole_batch_and_stores_nothing(small_store: RedisKeyStore) -> None:
    reserve(small_store, new_keys(3))
    refused = new_keys(3)
    with pytest.raises(StoreFull):
        reserve(small_store, refused)
    assert small_store.pending_count() == 3
    with pytest.raises(KeysNotFound):
        small_store.claim([refused[0].key_id], SLAVE, MASTER)
    reserve(small_store, new_keys(2))
    with pytest.raises(StoreFull):
        reserve(small_store, new_keys(1))
    assert small_store.pending_count() == 5


def test_claimed_aborted_and_expired_reservations_free_capacity(small_store: RedisKeyStore) -> None:
    claimed = reserve(small_store, new_keys(2))
    reserve(small_store, new_keys(2), ttl_s=1)
    small_store.reserve([Reservation(key, MASTER, frozenset({SLAVE})) for key in new_keys(1)], TTL_S, "chain-1")
    with pytest.raises(StoreFull):
        reserve(small_store, new_keys(1))
    small_store.claim(claimed, SLAVE, MASTER)
    assert small_store.abort_request("chain-1") == 1
    assert small_store.pending_count() == 2
    deadline = time.monotonic() + 3.5
    while small_store.pending_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert small_store.pending_count() == 0
    reserve(small_store, new_keys(5))


def test_a_key_with_slaves_left_still_counts(small_store: RedisKeyStore) -> None:
    ids = reserve(small_store, new_keys(5), slaves=["sae-2", "sae-3"])
    small_store.claim(ids, "sae-2", MASTER)
    with pytest.raises(StoreFull):
        reserve(small_store, new_keys(1))
    small_store.claim(ids, "sae-3", MASTER)
    reserve(small_store, new_keys(5))


# --- at rest --------------------------------------------------------------------------


def test_nothing_at_rest_reveals_key_material(store: RedisKeyStore, raw: redis.Redis) -> None:
    keys = new_keys(20, size_bytes=32) + new_keys(5, size_bytes=8)
    reserve(store, keys, slaves=["sae-2", "sae-3"])
    stored = dump(raw)
    assert len(stored) > len(keys)
    blob = b"\n".join(stored)
    for key in keys:
        assert not any(form in blob for form in encodings(key.material)), f"material of {key.key_id} at rest"


def test_a_sealed_value_moved_to_another_key_id_does_not_unseal(store: RedisKeyStore, raw) -> None:
    victim, target = new_keys(2)
    reserve(store, [victim, target])
    names = {name.decode().rsplit(":", 1)[1]: name for name in raw.scan_iter()}
    raw.hset(names[target.key_id], "sealed", raw.hget(names[victim.key_id], "sealed"))
    with pytest.raises(StoreError):
        store.claim([target.key_id], SLAVE, MASTER)


def test_a_store_with_another_kek_cannot_unseal(redis_url: str, store: RedisKeyStore) -> None:
    ids = reserve(store, new_keys(1))
    thief = open_store(redis_url, os.urandom(KEK_SIZE_BYTES))
    try:
        with pytest.raises(StoreError):
            thief.claim(ids, SLAVE, MASTER)
    finally:
        thief.close()


# --- concurrency ------------------------------------------------------------------------


def _digest(key: Key) -> str:
    return hashlib.sha256(key.material).hexdigest()


def _claim_race(url: str, kek: bytes, key_ids: list[str], seed: int, barrier, results) -> None:
    """One worker: claim random batches drawn from all key_IDs, so batches of different
    workers overlap. Reports (key_ID, sha256 of material) for what it got."""
    store = open_store(url, kek)
    rng = random.Random(seed)
    got: list[tuple[str, str]] = []
    barrier.wait(timeout=60)
    for _ in range(RACE_ATTEMPTS):
        batch = rng.sample(key_ids, rng.randint(1, 12))
        try:
            keys = store.claim(batch, SLAVE, MASTER)
        except KeysNotFound:
            continue
        assert [k.key_id for k in keys] == batch
        got.extend((k.key_id, _digest(k)) for k in keys)
    store.close()
    results.put(got)


def test_racing_processes_deliver_every_key_exactly_once(redis_url: str, kek: bytes,
                                                         store: RedisKeyStore) -> None:
    keys = new_keys(RACE_KEYS)
    for start in range(0, RACE_KEYS, 250):
        reserve(store, keys[start:start + 250])
    expected = {key.key_id: _digest(key) for key in keys}
    delivered = race(_claim_race, (redis_url, kek, list(expected)), RACE_WORKERS)
    counts = Counter(key_id for key_id, _ in delivered)
    assert not [key_id for key_id, n in counts.items() if n > 1], "a key was delivered twice"
    assert len(counts) > RACE_KEYS // 4, "the workers hardly claimed anything"
    # Every key a worker did not get must still be there: failed batches took nothing.
    left = [key_id for key_id in expected if key_id not in counts]
    delivered += [(k.key_id, _digest(k)) for k in store.claim(left, SLAVE, MASTER)] if left else []
    assert sorted(key_id for key_id, _ in delivered) == sorted(expected)
    assert all(expected[key_id] == digest for key_id, digest in delivered), "material differs"
    assert store.pending_count() == 0


# --- durability ---------------------------------------------------------------------------


def test_reservations_survive_an_embedded_redis_restart(embedded_redis: EmbeddedRedis, kek: bytes) -> None:
    keys = new_keys(10)
    store = open_store(embedded_redis.url, kek)
    ids = reserve(store, keys, slaves=["sae-2", "sae-3"])
    store.claim(ids[:3], "sae-2", MASTER)
    store.claim(ids[:3], "sae-3", MASTER)
    store.claim(ids[3:5], "sae-2", MASTER)
    store.close()
    embedded_redis.stop()
    with EmbeddedRedis(embedded_redis.data_dir) as again:
        store = open_store(again.url, kek)
        try:
            assert store.pending_count() == 7
            with pytest.raises(KeysNotFound):
                store.claim(ids[:1], "sae-2", MASTER)
            with pytest.raises(Unauthorized):
                store.claim(ids[3:4], "sae-2", MASTER)
            assert_same_keys(store.claim(ids[3:], "sae-3", MASTER), keys[3:])
            assert_same_keys(store.claim(ids[5:], "sae-2", MASTER), keys[5:])
            assert store.pending_count() == 0
        finally:
            store.close()


def test_confirmed_reservations_survive_sigkill_of_redis(external_redis: RedisServerProcess, kek: bytes) -> None:
    keys = new_keys(50)
    store = open_store(external_redis.url, kek)
    ids = reserve(store, keys)
    store.claim(ids[:10], SLAVE, MASTER)
    store.close()
    external_redis.process.send_signal(signal.SIGKILL)
    external_redis.process.wait(timeout=10)
    again = RedisServerProcess(external_redis.port, external_redis.data_dir).start()
    store = open_store(again.url, kek)
    try:
        assert store.pending_count() == 40
        with pytest.raises(KeysNotFound):
            store.claim(ids[9:10], SLAVE, MASTER)
        assert_same_keys(store.claim(ids[10:], SLAVE, MASTER), keys[10:])
    finally:
        store.close()
        again.stop()
