"""SealedItems on Redis (kms/storage/redis_sealed.py), on every Redis topology: the walk
finds every sealed value the stores write (checked against an independent scan of the
whole keyspace, so a new place that holds sealed values fails here), and replace is a
compare-and-swap that never undoes a claim, carve or take."""

from __future__ import annotations

import json

import pytest

from kms.sealing import Sealer
from kms.storage import open_sealed_items
from tests.conftest import REDIS_KINDS, REPLICATED_KINDS, _open_backend
from tests.support.sealed_fill import LINK, OWNER, fill, stored_digests


@pytest.fixture(params=[*REDIS_KINDS, *REPLICATED_KINDS])
def any_redis(request):
    opened = _open_backend(request, request.param)
    yield opened
    opened.close()


def every_sealed_value(raw) -> int:
    """Counted without the walker: hashes with a "sealed" field, JSON list entries with one."""
    count = 0
    for name in raw.scan_iter(count=500):
        kind = raw.type(name).decode()
        if kind == "hash" and raw.hexists(name, "sealed"):
            count += 1
        elif kind == "list":
            count += sum("sealed" in json.loads(entry) for entry in raw.lrange(name, 0, -1))
    return count


def test_the_walk_finds_every_sealed_value_of_the_node_and_no_other(any_redis, kek) -> None:
    expected = fill(any_redis.open("KME-A", kek))
    fill(any_redis.open("KME-B", kek))  # another node on the same Redis
    items = open_sealed_items(any_redis.settings, "KME-A")
    assert stored_digests(items, Sealer(kek, "KME-A")) == expected
    assert every_sealed_value(any_redis.raw) == 2 * len(expected)


def test_replace_swaps_only_an_unchanged_value(any_redis, kek) -> None:
    storage = any_redis.open("KME-A", kek)
    fill(storage, reservations=2, pool_blocks=2, inbox_blocks=2)
    items = open_sealed_items(any_redis.settings, "KME-A")
    sealer = Sealer(kek, "KME-A")
    found = [item for batch in items.batches(10) for item in batch]
    by_kind = {item.identity.split("|")[0] if "|" in item.identity else "res": item for item in found}
    storage.pools.carve(LINK, OWNER, [64 + 64])        # both pool blocks used up: gone
    key_id = by_kind["res"].identity
    storage.store.claim([key_id], "sae-2", "sae-1")    # the reservation claimed: gone
    storage.inbox.take(LINK, 1)                         # the first inbox block taken
    outcomes = {item.identity: items.replace(item, sealer.seal(b"new", item.identity)) for item in found}
    assert [identity for identity, replaced in outcomes.items() if replaced] == [
        item.identity for item in found if item.identity not in (key_id, f"pool|{LINK}|{LINK}:0",
                                                                  f"pool|{LINK}|{LINK}:1", "inbox|A--B|in:0")]
    after = {item.identity: sealer.unseal(item.sealed, item.identity) for batch in items.batches(10) for item in batch}
    assert key_id not in after and all(value == b"new" for value in after.values()) and len(after) == 2
