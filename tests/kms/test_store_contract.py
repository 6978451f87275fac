"""The KeyStore contract (kms/store.py), run against every backend: the in-memory twin
(unit tier) and RedisKeyStore on every kind of Redis the product supports, the embedded
server and a separately started redis-server (DESIGN.md sections 5 and 8). What only
Redis has (data at rest, TTLs, several processes, durability) is checked on Redis only."""

from __future__ import annotations

import hashlib
import os
import queue
import random
import threading
import signal
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from kms.storage.embedded_redis import EmbeddedRedis
from kms.errors import (
    BadRequest,
    DuplicateKeyId,
    KeysNotFound,
    QuotaExceeded,
    StoreError,
    StoreFull,
    Unauthorized,
)
from kms.keys import Key, Provenance, Reservation
from kms.storage.redis_client import redis_client
from kms.storage.redis_store import RedisKeyStore
from kms.sealing import KEK_SIZE_BYTES, Sealer
from kms.storage import StorageLimits
from kms.store import KeyStore
from tests.support.backends import Backend, RedisBackend
from tests.support.processes import RedisServerProcess
from tests.support.at_rest import dump, encodings
from tests.support.races import race
from tests.support.conditions import wait_until

KME = "KME-1"
MASTER = "sae-1"
SLAVE = "sae-2"
TTL_S = 600
RACE_KEYS = 2000
RACE_WORKERS = 8
RACE_ATTEMPTS = 300
#: How long a 1-second TTL may take to be enforced (generous: a loaded machine).
EXPIRY_TIMEOUT_S = 30


def open_store(url: str, kek: bytes, kme_id: str = KME, capacity_keys: int | None = None) -> RedisKeyStore:
    return RedisKeyStore(redis_client(url), Sealer(kek, kme_id), kme_id, capacity_keys)


@pytest.fixture
def store(backend: Backend, kek: bytes) -> Iterator[KeyStore]:
    store = backend.open(KME, kek).store
    yield store
    store.close()


@pytest.fixture
def redis_store(redis_backend: RedisBackend, kek: bytes) -> Iterator[KeyStore]:
    store = redis_backend.open(KME, kek).store
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


def test_backend_answers(store: KeyStore) -> None:
    assert store.ping() is True


def test_claim_returns_exactly_what_was_reserved_in_the_order_asked(store: KeyStore) -> None:
    keys = new_keys(6, size_bytes=64)
    reserve(store, keys)
    asked = [keys[i] for i in (4, 0, 5, 2, 1, 3)]
    assert_same_keys(store.claim([k.key_id for k in asked], SLAVE, MASTER), asked)


def test_a_claimed_key_is_gone(store: KeyStore, backend: Backend) -> None:
    (key,) = new_keys(1)
    reserve(store, [key])
    store.claim([key.key_id], SLAVE, MASTER)
    with pytest.raises(KeysNotFound):
        store.claim([key.key_id], SLAVE, MASTER)
    assert backend.records() == 0


def test_claim_with_one_unknown_id_consumes_nothing(store: KeyStore) -> None:
    keys = new_keys(3)
    ids = reserve(store, keys)
    unknown = str(uuid.uuid4())
    with pytest.raises(KeysNotFound) as caught:
        store.claim([ids[0], unknown, ids[2]], SLAVE, MASTER)
    assert caught.value.details == [{"key_ID": unknown}]
    assert store.pending_count() == 3
    assert_same_keys(store.claim(ids, SLAVE, MASTER), keys)


def test_claim_by_a_non_slave_consumes_nothing(store: KeyStore) -> None:
    keys = new_keys(2)
    ids = reserve(store, keys)
    for caller in ("sae-3", MASTER):
        with pytest.raises(Unauthorized):
            store.claim(ids, caller, MASTER)
    assert store.pending_count() == 2
    assert_same_keys(store.claim(ids, SLAVE, MASTER), keys)


def test_claim_across_keys_of_different_slaves_consumes_nothing(store: KeyStore) -> None:
    mine, theirs = new_keys(2)
    reserve(store, [mine], slaves=[SLAVE])
    reserve(store, [theirs], slaves=["sae-3"])
    with pytest.raises(Unauthorized):
        store.claim([mine.key_id, theirs.key_id], SLAVE, MASTER)
    assert_same_keys(store.claim([mine.key_id], SLAVE, MASTER), [mine])
    assert_same_keys(store.claim([theirs.key_id], "sae-3", MASTER), [theirs])


def test_claim_naming_the_wrong_master_is_not_found_and_consumes_nothing(store: KeyStore) -> None:
    keys = new_keys(2)
    ids = reserve(store, keys)
    with pytest.raises(KeysNotFound):
        store.claim(ids, SLAVE, "sae-3")
    assert_same_keys(store.claim(ids, SLAVE, MASTER), keys)


def test_every_slave_claims_once_and_the_key_goes_after_the_last(store: KeyStore, backend: Backend) -> None:
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
    assert backend.records() == 0
    with pytest.raises(KeysNotFound):
        store.claim(ids[:1], "sae-4", MASTER)


def test_a_repeated_key_id_in_one_claim_cannot_take_another_slaves_share(store: KeyStore) -> None:
    (key,) = new_keys(1)
    reserve(store, [key], slaves=["sae-2", "sae-3"])
    try:
        store.claim([key.key_id, key.key_id], "sae-2", MASTER)
    except (BadRequest, Unauthorized, StoreError):
        pass
    assert_same_keys(store.claim([key.key_id], "sae-3", MASTER), [key])


def test_reserving_an_existing_key_id_stores_nothing_of_the_batch(store: KeyStore) -> None:
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


def test_a_key_id_repeated_within_one_batch_is_refused(store: KeyStore, backend: Backend) -> None:
    first, = new_keys(1)
    second = Key(first.key_id, os.urandom(32), first.provenance)
    with pytest.raises(DuplicateKeyId):
        store.reserve([Reservation(first, MASTER, frozenset({"sae-2"})),
                       Reservation(second, MASTER, frozenset({"sae-3"}))], TTL_S)
    assert backend.records() == 0


def test_reserving_nothing_is_a_no_op(store: KeyStore) -> None:
    store.reserve([], TTL_S)
    assert store.pending_count() == 0


def wait_until_nothing_pending(store: KeyStore, master: str | None = None) -> None:
    wait_until(lambda: store.pending_count(master) == 0, "1-second reservations to expire", EXPIRY_TIMEOUT_S)


# Expiry tests never assert that a 1-second reservation still exists: on a loaded
# machine a second can pass before the next call. Long-TTL tests show it holds.
def test_reservations_expire_and_leave_nothing(store: KeyStore, backend: Backend) -> None:
    ids = reserve(store, new_keys(2), ttl_s=1)
    wait_until(lambda: store.pending_count() == 0 and backend.records() == 0,
               "1-second reservations to expire and leave no record", EXPIRY_TIMEOUT_S)
    with pytest.raises(KeysNotFound):
        store.claim(ids[:1], SLAVE, MASTER)


def test_every_stored_record_carries_its_ttl(redis_store: KeyStore, redis_backend: RedisBackend) -> None:
    reserve(redis_store, new_keys(3), slaves=["sae-2", "sae-3"], ttl_s=120)
    for name in redis_backend.raw.scan_iter():
        assert 0 < redis_backend.raw.ttl(name) <= 120


def test_pending_count_follows_reserve_and_claim(store: KeyStore) -> None:
    assert store.pending_count() == 0
    ids = reserve(store, new_keys(3))
    reserve(store, new_keys(2), slaves=["sae-3", "sae-4"])
    assert store.pending_count() == 5
    store.claim(ids[:2], SLAVE, MASTER)
    assert store.pending_count() == 3


def test_nodes_sharing_one_backend_do_not_see_each_others_keys(backend: Backend, kek: bytes,
                                                               store: KeyStore) -> None:
    ids = reserve(store, new_keys(2))
    other = backend.open("KME-2", kek).store
    try:
        assert other.pending_count() == 0
        with pytest.raises(KeysNotFound):
            other.claim(ids, SLAVE, MASTER)
    finally:
        other.close()
    assert store.pending_count() == 2


# --- capacity ---------------------------------------------------------------------------


@pytest.fixture
def small_store(backend: Backend, kek: bytes) -> Iterator[KeyStore]:
    store = backend.open(KME, kek, StorageLimits(capacity_keys=5)).store
    yield store
    store.close()


def test_a_full_store_refuses_the_whole_batch_and_stores_nothing(small_store: KeyStore) -> None:
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


def test_claimed_and_aborted_reservations_free_capacity(small_store: KeyStore) -> None:
    claimed = reserve(small_store, new_keys(2))
    reserve(small_store, new_keys(2))
    small_store.reserve([Reservation(key, MASTER, frozenset({SLAVE})) for key in new_keys(1)], TTL_S, "chain-1")
    with pytest.raises(StoreFull):
        reserve(small_store, new_keys(1))
    small_store.claim(claimed, SLAVE, MASTER)
    assert small_store.abort_request("chain-1") == 1
    assert small_store.pending_count() == 2
    reserve(small_store, new_keys(3))
    with pytest.raises(StoreFull):
        reserve(small_store, new_keys(1))


def test_expired_reservations_free_capacity(small_store: KeyStore) -> None:
    reserve(small_store, new_keys(5), ttl_s=1)
    wait_until_nothing_pending(small_store)
    reserve(small_store, new_keys(5))
    with pytest.raises(StoreFull):
        reserve(small_store, new_keys(1))


def test_a_key_with_slaves_left_still_counts(small_store: KeyStore) -> None:
    ids = reserve(small_store, new_keys(5), slaves=["sae-2", "sae-3"])
    small_store.claim(ids, "sae-2", MASTER)
    with pytest.raises(StoreFull):
        reserve(small_store, new_keys(1))
    small_store.claim(ids, "sae-3", MASTER)
    reserve(small_store, new_keys(5))


# --- per-SAE quota and rate quota ---------------------------------------------------------


@pytest.fixture
def quota_store(backend: Backend, kek: bytes) -> Iterator[KeyStore]:
    store = backend.open(KME, kek, StorageLimits(capacity_keys=100, quota_keys_per_master=4)).store
    yield store
    store.close()


def test_a_master_over_its_quota_stores_nothing_while_others_still_can(quota_store: KeyStore) -> None:
    ids = reserve(quota_store, new_keys(3))
    with pytest.raises(QuotaExceeded):
        reserve(quota_store, new_keys(2))
    assert quota_store.pending_count() == 3
    assert quota_store.pending_count(MASTER) == 3
    reserve(quota_store, new_keys(4), master="sae-9")
    assert quota_store.pending_count("sae-9") == 4 and quota_store.pending_count() == 7
    reserve(quota_store, new_keys(1))
    with pytest.raises(QuotaExceeded):
        reserve(quota_store, new_keys(1))
    quota_store.claim(ids[:2], SLAVE, MASTER)
    assert quota_store.pending_count(MASTER) == 2
    reserve(quota_store, new_keys(2))


def test_quota_counts_a_batch_per_master(quota_store: KeyStore) -> None:
    mine, theirs = new_keys(3), new_keys(3)
    batch = [Reservation(k, MASTER, frozenset({SLAVE})) for k in mine] + \
            [Reservation(k, "sae-9", frozenset({SLAVE})) for k in theirs]
    quota_store.reserve(batch, TTL_S)
    assert (quota_store.pending_count(MASTER), quota_store.pending_count("sae-9")) == (3, 3)
    with pytest.raises(QuotaExceeded):
        quota_store.reserve([Reservation(k, "sae-9", frozenset({SLAVE})) for k in new_keys(2)], TTL_S)


def test_aborted_reservations_free_the_quota(quota_store: KeyStore) -> None:
    quota_store.reserve([Reservation(k, MASTER, frozenset({SLAVE})) for k in new_keys(2)], TTL_S, "chain-q")
    reserve(quota_store, new_keys(2))
    with pytest.raises(QuotaExceeded):
        reserve(quota_store, new_keys(1))
    assert quota_store.abort_request("chain-q") == 2
    assert quota_store.pending_count(MASTER) == 2
    reserve(quota_store, new_keys(2))


def test_expired_reservations_free_the_quota(quota_store: KeyStore) -> None:
    reserve(quota_store, new_keys(4), ttl_s=1)
    wait_until_nothing_pending(quota_store, MASTER)
    reserve(quota_store, new_keys(4))
    with pytest.raises(QuotaExceeded):
        reserve(quota_store, new_keys(1))


def test_charge_adds_up_to_the_limit_and_refuses_beyond_it(store: KeyStore) -> None:
    store.charge("link-bits:sae-1", 600, 1000, 3600)
    store.charge("link-bits:sae-1", 400, 1000, 3600)
    with pytest.raises(QuotaExceeded):
        store.charge("link-bits:sae-1", 1, 1000, 3600)
    store.charge("link-bits:sae-2", 1000, 1000, 3600)
    with pytest.raises(QuotaExceeded):
        store.charge("link-bits:sae-3", 1001, 1000, 3600)
    store.charge("link-bits:sae-3", 1000, 1000, 3600)


def test_a_refused_charge_adds_nothing(store: KeyStore) -> None:
    store.charge("acct", 900, 1000, 3600 * 24)
    for _ in range(3):
        with pytest.raises(QuotaExceeded):
            store.charge("acct", 101, 1000, 3600 * 24)
    store.charge("acct", 100, 1000, 3600 * 24)


def test_a_new_window_starts_afresh(store: KeyStore) -> None:
    store.charge("acct", 900, 1000, 1)

    def charged_again() -> bool:
        try:
            store.charge("acct", 900, 1000, 1)
        except QuotaExceeded:
            return False
        return True

    wait_until(charged_again, "a new 1-second window", EXPIRY_TIMEOUT_S)


# --- at rest --------------------------------------------------------------------------


def test_nothing_at_rest_reveals_key_material(redis_store: KeyStore, redis_backend: RedisBackend) -> None:
    store, raw = redis_store, redis_backend.raw
    keys = new_keys(20, size_bytes=32) + new_keys(5, size_bytes=8)
    reserve(store, keys, slaves=["sae-2", "sae-3"])
    stored = dump(raw)
    assert len(stored) > len(keys)
    blob = b"\n".join(stored)
    for key in keys:
        assert not any(form in blob for form in encodings(key.material)), f"material of {key.key_id} at rest"


def test_a_sealed_value_moved_to_another_key_id_does_not_unseal(redis_store: KeyStore,
                                                                redis_backend: RedisBackend) -> None:
    store, raw = redis_store, redis_backend.raw
    victim, target = new_keys(2)
    reserve(store, [victim, target])
    names = {name.decode().rsplit(":", 1)[1]: name for name in raw.scan_iter()}
    raw.hset(names[target.key_id], "sealed", raw.hget(names[victim.key_id], "sealed"))
    with pytest.raises(StoreError):
        store.claim([target.key_id], SLAVE, MASTER)


def test_a_store_with_another_kek_cannot_unseal(redis_backend: RedisBackend, redis_store: KeyStore) -> None:
    ids = reserve(redis_store, new_keys(1))
    thief = redis_backend.open(KME, os.urandom(KEK_SIZE_BYTES)).store
    try:
        with pytest.raises(StoreError):
            thief.claim(ids, SLAVE, MASTER)
    finally:
        thief.close()


# --- concurrency ------------------------------------------------------------------------


def _digest(key: Key) -> str:
    return hashlib.sha256(key.material).hexdigest()


def _claim_race(url: str, kek: bytes, key_ids: list[str], seed: int, barrier, results) -> None:
    """One worker: claim random (seeded) batches drawn from all key_IDs, so batches of
    different workers overlap. Reports one (got, refused): (key_ID, sha256 of material)
    for what it got, and the batches it was refused."""
    store = open_store(url, kek)
    rng = random.Random(seed)
    got: list[tuple[str, str]] = []
    refused: list[list[str]] = []
    barrier.wait(timeout=60)
    for _ in range(RACE_ATTEMPTS):
        batch = rng.sample(key_ids, rng.randint(1, 12))
        try:
            keys = store.claim(batch, SLAVE, MASTER)
        except KeysNotFound:
            refused.append(batch)
            continue
        assert [k.key_id for k in keys] == batch
        got.extend((k.key_id, _digest(k)) for k in keys)
    store.close()
    results.put([(got, refused)])


def assert_refusals_explained(refused: list[list[str]], claimed: set[str]) -> None:
    """Every key was reserved before the race, so a batch may be refused only if one of
    its keys was claimed (by anyone): whatever the interleaving, a store that refuses a
    batch of keys all still there fails this."""
    unexplained = sum(not claimed.intersection(batch) for batch in refused)
    assert unexplained == 0, f"{unexplained} of {len(refused)} refused batches held only unclaimed keys"


def test_racing_processes_deliver_every_key_exactly_once(redis_backend: RedisBackend, kek: bytes,
                                                         redis_store: KeyStore) -> None:
    store, redis_url = redis_store, redis_backend.url
    keys = new_keys(RACE_KEYS)
    for start in range(0, RACE_KEYS, 250):
        reserve(store, keys[start:start + 250])
    expected = {key.key_id: _digest(key) for key in keys}
    reports = race(_claim_race, (redis_url, kek, list(expected)), RACE_WORKERS)
    assert_every_key_delivered_once(reports, expected, store)
    assert store.pending_count() == 0


def assert_every_key_delivered_once(reports: list, expected: dict[str, str], store: KeyStore) -> None:
    """The racers' (delivered, refused batches) reports: no key twice, every refusal
    explained by a key someone got, and every key a racer did not get still there
    (failed batches took nothing), each with its own material."""
    delivered = [item for got, _ in reports for item in got]
    counts = Counter(key_id for key_id, _ in delivered)
    assert not [key_id for key_id, n in counts.items() if n > 1], "a key was delivered twice"
    assert_refusals_explained([batch for _, refused in reports for batch in refused], set(counts))
    left = [key_id for key_id in expected if key_id not in counts]
    delivered += [(k.key_id, _digest(k)) for k in store.claim(left, SLAVE, MASTER)] if left else []
    assert sorted(key_id for key_id, _ in delivered) == sorted(expected)
    assert all(expected[key_id] == digest for key_id, digest in delivered), "material differs"


def test_racing_threads_deliver_every_key_exactly_once(backend: Backend, kek: bytes, store: KeyStore) -> None:
    """The same race on every backend, between threads of one process (the in-memory
    store's whole use); each thread has its own connection."""
    keys = new_keys(400)
    reserve(store, keys[:200])
    reserve(store, keys[200:])
    expected = {key.key_id: _digest(key) for key in keys}
    barrier, results = threading.Barrier(4), queue.Queue()

    def worker(seed: int) -> None:
        mine = backend.open(KME, kek).store
        rng, got, refused = random.Random(seed), [], []
        barrier.wait(timeout=30)
        for _ in range(150):
            batch = rng.sample(list(expected), rng.randint(1, 8))
            try:
                got += [(k.key_id, _digest(k)) for k in mine.claim(batch, SLAVE, MASTER)]
            except KeysNotFound:
                refused.append(batch)
        results.put((got, refused))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert_every_key_delivered_once([results.get_nowait() for _ in threads], expected, store)


# --- durability ---------------------------------------------------------------------------


@pytest.mark.integration
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


@pytest.mark.integration
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
