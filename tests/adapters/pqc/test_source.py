"""The ``ml-kem`` source (adapters/pqc/source.py) around the exchange: the answering
end's blocks go through its inbox, the initiating end's worker paces exchanges and
reports failures in its health. Blocks are compared by digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from adapters.pqc.source import MlKemSource
from kms.errors import BadRequest, Unauthorized
from kms.sources import LinkChannel, SourceContext
from kms.storage import open_memory_storage
from tests.support.conditions import wait_until
from tests.support.pqc import PQC_SECTION, end_files, write_files

A, B, LINK = "KME-A", "KME-B", "A-B#pqc"
SECTION = {k: v for k, v in PQC_SECTION.items() if k != "kind"}


class DirectChannel(LinkChannel):
    def __init__(self, responder: MlKemSource):
        self.responder = responder

    def exchange(self, message: dict) -> dict:
        return self.responder.respond(message)


def build(root: Path, me: str, peer: str, pinned: str | None = None, **context) -> MlKemSource:
    write_files(root / me, end_files(me, peer, pinned=pinned))
    return MlKemSource.from_config(dict(SECTION), SourceContext(me, peer, LINK, str(root / me), **context))


def pair(root: Path, pinned_by_b: str | None = None) -> tuple[MlKemSource, MlKemSource, MlKemSource]:
    """(A's link-manager end, B's web-worker responder, B's link-manager end)."""
    storage = open_memory_storage(B)
    responder = build(root, B, A, pinned=pinned_by_b, inbox=storage.inbox, ledger=storage.ledger)
    initiator = build(root, A, B, channel=DirectChannel(responder))
    return initiator, responder, build(root, B, A, pinned=pinned_by_b, inbox=storage.inbox)


def digests(blocks) -> list[tuple[str, str]]:
    return [(b.block_id, hashlib.sha256(b.material).hexdigest()) for b in blocks]


def test_blocks_reach_the_answering_end_through_its_inbox(tmp_path: Path) -> None:
    initiator, _, answering = pair(tmp_path)
    assert answering.health().state == "down" and "waiting for the first offer" in answering.health().reason
    made = [initiator.exchange_once() for _ in range(3)]
    assert digests(initiator.fetch(1 << 20)) == digests(made) == digests(answering.fetch(1 << 20))
    assert answering.health().state == "up"


def test_the_worker_paces_exchanges(tmp_path: Path) -> None:
    initiator, _, answering = pair(tmp_path)
    initiator.start()
    try:
        wait_until(lambda: initiator.health().metrics["exchanges_ok"] >= 5, "five exchanges", 30)
    finally:
        initiator.stop()
    assert initiator.health().state == "up"
    mine, theirs = initiator.fetch(1 << 30), answering.fetch(1 << 30)
    assert len(mine) >= 5 and digests(mine) == digests(theirs)
    assert {b.sequence % 2 for b in mine} == {0, 1}, "both pool halves get blocks"


def test_a_peer_that_does_not_pin_our_key_leaves_the_link_down(tmp_path: Path) -> None:
    initiator, _, answering = pair(tmp_path, pinned_by_b="someone-else")
    with pytest.raises(Unauthorized):
        initiator.exchange_once()
    initiator.start()
    try:
        health = wait_until(lambda: (h := initiator.health()).metrics["exchanges_failed"] >= 3 and h,
                            "three refused exchanges", 30)
    finally:
        initiator.stop()
    assert health.state == "down" and "not pinned for KME-A" in health.reason
    assert initiator.fetch(1 << 30) == [] and answering.fetch(1 << 30) == []


def test_answering_needs_the_nodes_ledger(tmp_path: Path) -> None:
    initiator, _, _ = pair(tmp_path)
    without = build(tmp_path, B, A, inbox=open_memory_storage(B).inbox)
    with pytest.raises(BadRequest, match="no sequence ledger"):
        without.respond({})
    assert initiator.provenance.sources == ("ml-kem",)
    assert initiator.provenance.algorithms == ("ml-kem-768", "ml-dsa-65", "hkdf-sha512")
