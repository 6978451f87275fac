"""The invariants every multi-node and fault test checks: no key_ID or key bytes
delivered twice, every slave gets the master's bytes exactly once, and both ends of
every link hold identical blocks. Comparisons use counts and digests, never key bytes
in messages."""

from __future__ import annotations

import threading

from kms.config import pool_id
from tests.support.network import LocalNetwork


class Ledger:
    """Every key an SAE received, to check exactly-once delivery across the module."""

    def __init__(self):
        self.material: dict[str, bytes] = {}
        self.fetches: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def issued(self, keys) -> None:
        with self.lock:
            for key in keys:
                assert key.key_id not in self.material, "key_ID issued twice"
                self.material[key.key_id] = key.material

    def fetched(self, slave: str, keys) -> None:
        with self.lock:
            for key in keys:
                self.fetches[(slave, key.key_id)] = self.fetches.get((slave, key.key_id), 0) + 1
                assert self.material.get(key.key_id) == key.material, "slave got other bytes than the master"

    def check(self) -> None:
        materials = list(self.material.values())
        assert len(set(materials)) == len(materials), "two key_IDs carried the same bytes"
        assert all(count == 1 for count in self.fetches.values()), "a key was delivered twice to one slave"


def assert_pools_identical(net: LocalNetwork) -> None:
    """Sync each follower to its owner's head (as the link manager does), then compare
    every block both hold, in each link's QKD pool and its PQC pool (``<link>#pqc``)."""
    for link in net.links:
        for pool in (pool_id(link.link_id, "qkd"), pool_id(link.link_id, "pqc")):
            for owner in link.nodes:
                follower = next(n for n in link.nodes if n != owner)
                _assert_follower_holds_owners_blocks(net, pool, owner, follower)


def _assert_follower_holds_owners_blocks(net: LocalNetwork, pool: str, owner: str, follower: str) -> None:
    leader_pools, follower_pools = net.pools(owner), net.pools(follower)
    head = leader_pools.head(pool, owner)
    if head is not None:
        follower_pools.discard_before(pool, owner, *head)
    mine = leader_pools.block_digests(pool, owner)
    theirs = follower_pools.block_digests(pool, owner)
    common = set(mine) & set(theirs)
    in_flight = [seq for seq in set(mine) - set(theirs) if seq <= max(theirs, default=-1)]
    assert in_flight == [], f"{pool}/{owner}: the owner holds blocks its peer never got"
    differing = [seq for seq in common if mine[seq] != theirs[seq]]
    assert differing == [], f"{pool}/{owner}: blocks differ between the ends"
