"""The BlockInbox contract (kms/inbox.py), run against every backend: the in-memory
twin and RedisBlockInbox on both kinds of Redis. Material is compared by digest."""

from __future__ import annotations

import hashlib
import os

import pytest

from kms.inbox import BlockInbox
from kms.keys import KeyBlock
from tests.support.at_rest import dump, encodings
from tests.support.backends import Backend, RedisBackend

LINK = "A--B"


def blocks(*sequences: int, size_bytes: int = 32) -> list[KeyBlock]:
    return [KeyBlock(f"{LINK}:{seq}", os.urandom(size_bytes), seq) for seq in sequences]


def digests(items: list[KeyBlock]) -> list[tuple[str, int, str]]:
    return [(b.block_id, b.sequence, hashlib.sha256(b.material).hexdigest()) for b in items]


KEK = os.urandom(32)


@pytest.fixture
def inbox(backend: Backend) -> BlockInbox:
    return backend.open("KME-B", KEK).inbox


def test_blocks_come_out_first_in_first_out_and_once(inbox: BlockInbox) -> None:
    sent = blocks(4, 2, 6)
    inbox.put(LINK, sent[:2])
    inbox.put(LINK, sent[2:])
    assert inbox.waiting(LINK) == 3
    assert digests(inbox.take(LINK, 2)) == digests(sent[:2])
    assert digests(inbox.take(LINK, 5)) == digests(sent[2:])
    assert inbox.take(LINK, 5) == [] and inbox.waiting(LINK) == 0


def test_links_and_nodes_are_separate(backend: Backend, inbox: BlockInbox) -> None:
    inbox.put(LINK, blocks(1))
    inbox.put("B--C", blocks(3))
    assert backend.open("KME-A", KEK).inbox.waiting(LINK) == 0
    assert [b.sequence for b in inbox.take("B--C", 9)] == [3]
    assert [b.sequence for b in backend.open("KME-B", KEK).inbox.take(LINK, 9)] == [1]


def test_putting_nothing_changes_nothing(inbox: BlockInbox) -> None:
    inbox.put(LINK, [])
    assert inbox.waiting(LINK) == 0


def test_nothing_at_rest_reveals_inbox_material(redis_backend: RedisBackend) -> None:
    inbox = redis_backend.open("KME-B").inbox
    sent = blocks(2, 4, size_bytes=64)
    inbox.put(LINK, sent)
    blob = b"\n".join(dump(redis_backend.raw))
    assert len(blob) > 128
    assert not any(form in blob for block in sent for form in encodings(block.material))
