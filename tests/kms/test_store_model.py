"""Stateful property tests (hypothesis) of the key store and the link pools against small
models written here: any sequence of operations gives the same outcomes as the model,
and the invariants hold after every step (no key or pool byte handed out twice, nothing
lost, counts agree). Run on the in-memory twins (unit tier) and on the embedded Redis
(integration tier)."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kms.errors import KeysNotFound, QuotaExceeded, StoreFull, Unauthorized, Unavailable
from kms.keys import Key, KeyBlock, Provenance, Reservation
from kms.pools import PoolMismatch, Segment
from kms.storage import StorageLimits
from tests.support.backends import Backend

MASTERS = ("sae-1", "sae-9")
SLAVES = ("sae-2", "sae-3", "sae-4")
CAPACITY, QUOTA = 12, 8
MACHINE_SETTINGS = settings(max_examples=25, stateful_step_count=30, deadline=None, derandomize=True,
                            database=None, suppress_health_check=list(HealthCheck))


# --- the key store ---------------------------------------------------------------------------


@dataclass
class HeldKey:
    digest: str
    master: str
    pending: set[str]


@dataclass
class StoreModel:
    """What a KeyStore holds, as plainly as it can be said."""

    held: dict[str, HeldKey] = field(default_factory=dict)
    chains: dict[str, set[str]] = field(default_factory=dict)

    def count(self, master: str | None = None) -> int:
        return sum(master is None or h.master == master for h in self.held.values())


def digest(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()


class StoreMachine(RuleBasedStateMachine):
    backend: Backend

    @initialize()
    def open(self) -> None:
        # Each example is a fresh node on the shared backend.
        self.store = self.backend.open(f"KME-{uuid.uuid4().hex[:8]}", limits=StorageLimits(CAPACITY, QUOTA)).store
        self.model = StoreModel()
        self.delivered: set[tuple[str, str]] = set()
        self.issued = 0  # key_IDs are numbered, so a replayed example draws the same ones

    @rule(master=st.sampled_from(MASTERS), number=st.integers(1, 4),
          slaves=st.sets(st.sampled_from(SLAVES), min_size=1, max_size=2), chain=st.sampled_from([None, "c1", "c2"]))
    def reserve(self, master, number, slaves, chain) -> None:
        keys = [Key(str(uuid.UUID(int=self.issued + i + 1)), os.urandom(16), Provenance(("csprng",)))
                for i in range(number)]
        self.issued += number
        expected = None
        if self.model.count() + number > CAPACITY:
            expected = StoreFull
        elif self.model.count(master) + number > QUOTA:
            expected = QuotaExceeded
        try:
            self.store.reserve([Reservation(k, master, frozenset(slaves)) for k in keys], 600, chain)
        except (StoreFull, QuotaExceeded) as exc:
            assert type(exc) is expected, f"{type(exc).__name__} where the model expected {expected}"
            return
        assert expected is None, f"reserved where the model expected {expected.__name__}"
        for key in keys:
            self.model.held[key.key_id] = HeldKey(digest(key.material), master, set(slaves))
            if chain:
                self.model.chains.setdefault(chain, set()).add(key.key_id)

    @precondition(lambda self: self.model.held)
    @rule(data=st.data(), slave=st.sampled_from(SLAVES), wrong_master=st.booleans())
    def claim(self, data, slave, wrong_master) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model.held)), min_size=1, max_size=3, unique=True))
        masters = {self.model.held[i].master for i in ids}
        master = sorted(masters)[0]
        if wrong_master:
            master = next(m for m in MASTERS if m not in masters) if len(masters) < len(MASTERS) else master
        expected = None
        if any(self.model.held[i].master != master for i in ids):
            expected = KeysNotFound
        elif any(slave not in self.model.held[i].pending for i in ids):
            expected = Unauthorized
        try:
            got = self.store.claim(ids, slave, master)
        except (KeysNotFound, Unauthorized) as exc:
            assert type(exc) is expected, f"{type(exc).__name__} where the model expected {expected}"
            return
        assert expected is None, f"handed out where the model expected {expected.__name__}"
        assert [k.key_id for k in got] == ids
        for key in got:
            held = self.model.held[key.key_id]
            assert digest(key.material) == held.digest, "material differs"
            assert (slave, key.key_id) not in self.delivered, "a key was delivered twice to one slave"
            self.delivered.add((slave, key.key_id))
            held.pending.discard(slave)
            if not held.pending:
                del self.model.held[key.key_id]

    @rule(chain=st.sampled_from(["c1", "c2", "never-used"]))
    def abort(self, chain) -> None:
        alive = {k for k in self.model.chains.pop(chain, set()) if k in self.model.held}
        assert self.store.abort_request(chain) == len(alive)
        for key_id in alive:
            del self.model.held[key_id]

    @invariant()
    def counts_agree(self) -> None:
        if hasattr(self, "model"):
            assert self.store.pending_count() == self.model.count()
            for master in MASTERS:
                assert self.store.pending_count(master) == self.model.count(master)


# --- the link pools ----------------------------------------------------------------------------

OWNER, PEER = "KME-A", "KME-B"


class PoolMachine(RuleBasedStateMachine):
    """The owner carves, the peer takes what the owner carved (or skips it), pool sync
    discards; the model is the set of unused byte positions at each end."""

    backend: Backend

    @initialize()
    def open(self) -> None:
        self.link = f"A--B-{uuid.uuid4().hex[:8]}"  # each example a fresh link on the shared backend
        self.owner = self.backend.open(OWNER).pools
        self.peer = self.backend.open(PEER).pools
        self.free: dict[str, set[tuple[str, int]]] = {OWNER: set(), PEER: set()}
        self.materials: dict[str, bytes] = {}
        self.next_sequence = 0
        self.carved: list[tuple[Segment, ...]] = []
        self.used: set[tuple[str, int]] = set()

    @rule(size=st.integers(1, 24))
    def add_block(self, size) -> None:
        block = KeyBlock(f"{self.link}:{self.next_sequence}", os.urandom(size), self.next_sequence)
        self.next_sequence += 2
        self.materials[block.block_id] = block.material
        for end, pools in ((OWNER, self.owner), (PEER, self.peer)):
            assert pools.add_blocks(self.link, OWNER, [block]) == 1
            self.free[end] |= {(block.block_id, i) for i in range(size)}

    @rule(sizes=st.lists(st.integers(1, 16), min_size=1, max_size=3))
    def carve(self, sizes) -> None:
        if sum(sizes) > len(self.free[OWNER]):
            with pytest.raises(Unavailable):
                self.owner.carve(self.link, OWNER, sizes)
            return
        for carved, size in zip(self.owner.carve(self.link, OWNER, sizes), sizes):
            positions = [(s.block_id, s.offset + i) for s in carved.segments for i in range(s.length)]
            assert len(positions) == size and set(positions) <= self.free[OWNER], "carved a used byte"
            assert carved.material == b"".join(self.materials[b][i:i + 1] for b, i in positions)
            self.free[OWNER] -= set(positions)
            self.carved.append(carved.segments)

    @precondition(lambda self: self.carved)
    @rule(data=st.data())
    def take(self, data) -> None:
        segments = self.carved.pop(data.draw(st.integers(0, len(self.carved) - 1)))
        positions = {(s.block_id, s.offset + i) for s in segments for i in range(s.length)}
        if positions <= self.free[PEER]:
            (material,) = self.peer.take_segments(self.link, OWNER, [segments])
            assert material == b"".join(self.materials[s.block_id][s.offset:s.offset + s.length] for s in segments)
            self.free[PEER] -= positions
        else:
            with pytest.raises(PoolMismatch):
                self.peer.take_segments(self.link, OWNER, [segments])

    @rule()
    def sync(self) -> None:
        head = self.owner.head(self.link, OWNER)
        if head is None:
            return
        sequence, offset = head
        dropped = {(b, i) for b, i in self.free[PEER]
                   if int(b.rsplit(":", 1)[1]) < sequence or (int(b.rsplit(":", 1)[1]) == sequence and i < offset)}
        assert self.peer.discard_before(self.link, OWNER, sequence, offset) == len(dropped)
        self.free[PEER] -= dropped

    @invariant()
    def counts_agree(self) -> None:
        if hasattr(self, "owner"):
            assert self.owner.available_bits(self.link, OWNER) == 8 * len(self.free[OWNER])
            assert self.peer.available_bits(self.link, OWNER) == 8 * len(self.free[PEER])


def check_against_the_model(machine: type[RuleBasedStateMachine], backend: Backend) -> None:
    """Run the machine's generated programs on ``backend``; its rules and invariants assert."""
    machine.backend = backend
    machine.TestCase.settings = MACHINE_SETTINGS
    machine.TestCase("runTest").runTest()


@pytest.mark.parametrize("machine", [StoreMachine, PoolMachine], ids=["store", "pools"])
def test_operations_match_the_model(machine, backend: Backend) -> None:
    check_against_the_model(machine, backend)
