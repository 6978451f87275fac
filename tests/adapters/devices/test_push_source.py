"""The ETSI 004 push protocol between the two ends of a link, in one process: both ends'
sources, devices replaced by a scripted client (what it answers, what it pushed), the
pushed chunks handed to each end as the node's key-material endpoint would, a direct
KM channel, a stepped clock."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.devices import status004
from adapters.devices.push_source import Etsi004DeviceSource
from adapters.devices.settings import parse_settings, resolve_role
from kms.errors import BadRequest
from kms.keys import KeyBlock
from kms.sources import SourceContext
from kms.storage import open_memory_storage
from tests.support.device_harness import DirectChannel, SteppedClock

A, B, LINK = "KME-A", "KME-B", "KME-A--KME-B"
KSID = "4eb81a5c-031f-4d1f-881d-309bee44fc20"


class ScriptedDevice:
    """An ETSI 004 device as its client sees it: answers from a script, calls recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.open_status = 1
        self.failing: dict[str, int] = {}

    def open_connect(self, source, destination, qos, key_stream_id=None):
        self.calls.append(("open-connect", key_stream_id, qos["key_chunk_size"]))
        if "open-connect" in self.failing:
            raise status004.fault(self.failing["open-connect"], "open-connect")
        return key_stream_id or KSID, self.open_status, qos

    def get_key(self, key_stream_id, index):
        self.calls.append(("get-key", key_stream_id, index))
        if "get-key" in self.failing:
            raise status004.fault(self.failing["get-key"], "get-key")
        return 0

    def close(self, key_stream_id):
        self.calls.append(("close", key_stream_id))

    def close_connections(self):
        pass


class PushLink:
    def __init__(self, root: Path, **settings: Any) -> None:
        for name in ("node.crt", "node.key", "ca.crt"):
            (root / name).write_bytes(b"placeholder")
        self.clock = SteppedClock()
        self.devices = {A: ScriptedDevice(), B: ScriptedDevice()}
        self.inboxes = {kme: open_memory_storage(kme).inbox for kme in (A, B)}
        self.responder = self._end(B, root, settings)
        self.channel = DirectChannel(self.responder)
        self.master, self.slave = self._end(A, root, settings, self.channel), self._end(B, root, settings)
        self.rng = np.random.default_rng(4)

    def _end(self, kme, root, settings, channel=None) -> Etsi004DeviceSource:
        section = {"url": "https://qkd", "cert": "node.crt", "key": "node.key", "ca": "ca.crt",
                   "server_name": f"qkd-{kme.lower()}", "chunks_per_block": 4, "align_timeout_s": 5,
                   "health_window_s": 10, **settings}
        context = SourceContext(kme, B if kme == A else A, LINK, str(root), channel=channel, inbox=self.inboxes[kme])
        parsed = parse_settings(section, context, "etsi004", "qkd-device-004", "etsi004-push")
        return Etsi004DeviceSource(parsed, context, resolve_role(parsed, context), lambda: self.devices[kme],
                                   clock=self.clock)

    def push(self, indexes, ksid: str = KSID, to=(A, B), flip_at: str | None = None) -> None:
        for index in indexes:
            material = self.rng.bytes(32)
            for kme in to:
                chunk = bytes([material[0] ^ 1]) + material[1:] if kme == flip_at else material
                source = self.master if kme == A else self.responder
                source.accept_pushed(KeyBlock(f"{ksid}:{index}", chunk, index))


def digest(block) -> str:
    return hashlib.sha256(block.material).hexdigest()


@pytest.fixture
def link(tmp_path: Path) -> PushLink:
    return PushLink(tmp_path)


def test_the_master_opens_the_stream_and_the_slave_joins_it(link: PushLink) -> None:
    assert link.master.step()
    assert link.devices[A].calls == [("open-connect", None, 32), ("get-key", KSID, 0)]
    assert link.devices[B].calls == [("open-connect", KSID, 32), ("get-key", KSID, 0)]
    assert json.loads(link.channel.transcript[0]) == {"op": "open", "key_stream_id": KSID}


def test_both_ends_make_the_same_blocks_from_the_same_indexes(link: PushLink) -> None:
    link.master.step()
    link.push(range(0, 8))
    assert link.master.step() and link.master.step() and not link.master.step()
    a, b = link.master.fetch(1 << 20), link.slave.fetch(1 << 20)
    assert [x.block_id for x in a] == [x.block_id for x in b] == [f"{KSID}:0", f"{KSID}:4"]
    assert [digest(x) for x in a] == [digest(x) for x in b] and all(x.size_bits == 4 * 256 - 56 for x in a)
    assert a[0].sequence < a[1].sequence and a[0].sequence % 2 != a[1].sequence % 2


def test_chunks_the_slave_lacks_yet_are_waited_for(link: PushLink) -> None:
    link.master.step()
    link.push(range(0, 4), to=(A,))
    assert not link.master.step()
    assert link.master.health().metrics["failures"] == 0
    link.push(range(0, 4), to=(B,))  # other bytes arrive late: the check will refuse them
    link.master.step()
    assert "equality check failed" in link.master.health().reason
    assert link.master.fetch(1 << 20) == [] and link.slave.fetch(1 << 20) == []


def test_different_bytes_at_one_end_are_refused(link: PushLink) -> None:
    link.master.step()
    link.push(range(0, 4), flip_at=B)
    link.master.step()
    assert "equality check failed" in link.master.health().reason
    link.push(range(4, 8))
    link.clock.advance(1)  # the backoff after the failure
    assert link.master.step() and len(link.master.fetch(1 << 20)) == len(link.slave.fetch(1 << 20)) == 1


def test_chunks_that_never_come_are_skipped_after_the_align_timeout(link: PushLink) -> None:
    link.master.step()
    link.push(range(2, 10))
    assert not link.master.step()
    link.clock.advance(6)
    assert not link.master.step()
    assert "never pushed chunks 0..1" in link.master.health().reason
    assert link.master.step()
    assert [b.block_id for b in link.master.fetch(1 << 20)] == [f"{KSID}:2"]


def test_a_chunk_of_the_wrong_size_is_refused(link: PushLink) -> None:
    with pytest.raises(BadRequest, match="key_buffer holds 31 bytes; this link's chunks are 32"):
        link.master.accept_pushed(KeyBlock(f"{KSID}:0", b"\x00" * 31, 0))


def test_only_the_configured_device_s_pushes_are_taken(link: PushLink) -> None:
    assert link.master.accepts_pushes_from(("qkd-kme-a", "127.0.0.1"))
    assert not link.master.accepts_pushes_from(("qkd-kme-b",))


def test_waiting_chunks_are_bounded(tmp_path: Path) -> None:
    link = PushLink(tmp_path, max_waiting_chunks=5)
    link.push(range(0, 9), to=(B,))
    assert link.inboxes[B].waiting(f"{LINK}#pushed") == 5


@pytest.mark.parametrize("operation, code", [(op, code) for op in ("open-connect", "get-key") for code in range(2, 9)])
def test_each_status_the_device_answers_gives_its_health(tmp_path: Path, operation: str, code: int) -> None:
    link = PushLink(tmp_path)
    link.devices[A].failing[operation] = code
    link.master.step()
    health = link.master.health()
    expected = "down" if status004.STATUSES[code].health == "down" else "degraded"
    assert health.state == expected and f"answered {operation} with ETSI 004 status {code}" in health.reason


def test_the_slave_s_device_status_is_named_at_the_master(link: PushLink) -> None:
    link.devices[B].failing["open-connect"] = 4
    link.master.step()
    assert "slave end KME-B: the device answered open-connect with ETSI 004 status 4" in link.master.health().reason
    assert ("close", KSID) in link.devices[A].calls


def test_stopping_closes_the_stream(link: PushLink) -> None:
    link.master.step()
    link.master.stop()
    assert link.devices[A].calls[-1] == ("close", KSID)
