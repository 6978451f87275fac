"""The link manager (qkms/linkd.py) with in-memory fakes: a failing step, whatever it
raises, is logged once and the loop goes on; a malformed peer answer counts as the peer
being unreachable; link sources are validated under their ``links[i].source`` path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from etsi_api import km_wire
from etsi_api.km_client import HttpPeerTransport
from kms.config import load_config, parse_config
from kms.errors import ConfigError, Unavailable
from kms.keys import KeyBlock, Provenance
from kms.link_board import LinkHalf
from kms.sources import KeySource, SourceHealth
from qkms.layout import LinkPlan, NodePlan, free_port, write_layout
from qkms.linkd import LinkEnd, LinkManager, build_link_ends, validate_link_sources
from tests.support.conditions import wait_until

SECRET = bytes.fromhex("5f4dcc3b5aa765d61d8327deb882cf99")
WAIT_S = 10.0


def node_config(links: list[dict], kme_id: str = "A"):
    nodes = sorted({n for link in links for n in link["nodes"]} | {kme_id, "B"})
    return parse_config({
        "kme_id": kme_id, "tls": {"cert": "c", "key": "k", "ca": "ca"}, "kek": {"env": "X"},
        "peers": [{"kme_id": n, "url": f"https://127.0.0.1:{9000 + i}"} for i, n in enumerate(nodes) if n != kme_id],
        "links": links,
    })


class ScriptedSource(KeySource):
    """Each fetch takes the next item of ``script``: an exception to raise or blocks to return."""

    kind = "scripted"
    on_demand = False

    def __init__(self, script: list[Any]):
        self.script = list(script)

    @classmethod
    def from_config(cls, section, context):
        return cls([])

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        item = self.script.pop(0) if self.script else []
        if isinstance(item, BaseException):
            raise item
        return item

    def health(self) -> SourceHealth:
        return SourceHealth("up")

    @property
    def provenance(self) -> Provenance:
        return Provenance(("scripted",))


class FakePools:
    """add_blocks raises the queued failures first, then records block ids."""

    def __init__(self, failures: list[BaseException] = ()):
        self.failures = list(failures)
        self.stored: dict[tuple[str, str], list[str]] = {}

    def add_blocks(self, link_id, owner, blocks) -> int:
        if self.failures:
            raise self.failures.pop(0)
        held = self.stored.setdefault((link_id, owner), [])
        new = [b.block_id for b in blocks if b.block_id not in held]
        held.extend(new)
        return len(new)

    def available_bits(self, link_id, owner) -> int:
        return 0

    def head(self, link_id, owner):
        return None


class FakeBoard:
    def __init__(self):
        self.published: list[LinkHalf] = []

    def publish(self, halves):
        self.published.extend(halves)


class FakeTransport:
    """link_halves(peer) answers what ``answers[peer]()`` returns (or raises)."""

    def __init__(self, answers: dict[str, Callable[[], list[LinkHalf]]]):
        self.answers = answers

    def link_halves(self, peer):
        return self.answers.get(peer, lambda: [])()

    def sync_pool(self, *args):
        pass


def peer_block(sequence: int) -> KeyBlock:
    """A block of B's half of link A-B (odd sequences belong to B, the higher KME_ID)."""
    return KeyBlock(f"A-B:{sequence}", SECRET, sequence)


def manager_for(source: KeySource, pools=None, transport=None, heartbeat=lambda: None, board=None,
                peers=("B",)):
    config = node_config([{"id": "A-B", "nodes": ["A", "B"]}] +
                         [{"id": f"A-{p}", "nodes": ["A", p]} for p in peers if p != "B"])
    end = LinkEnd(config.links[0], "B", source)
    return LinkManager(config, pools or FakePools(), board or FakeBoard(), transport or FakeTransport({}), [end],
                       heartbeat)


def run_until(manager: LinkManager, condition: Callable[[], bool]) -> threading.Thread:
    """Run the manager's loop in a thread until ``condition()``; the thread, still running."""
    thread = threading.Thread(target=manager.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: condition() or not thread.is_alive(), "the condition", WAIT_S, poll_s=0.01)
        assert thread.is_alive(), "the manager's loop ended"
    except BaseException:
        manager.stop()
        thread.join(WAIT_S)
        raise
    return thread


def stop(manager: LinkManager, thread: threading.Thread) -> None:
    manager.stop()
    thread.join(WAIT_S)
    assert not thread.is_alive()


@pytest.fixture(autouse=True)
def info_logs(caplog):
    caplog.set_level(logging.INFO, logger="qkms.linkd")


def step_failures(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "qkms.linkd" and "step failed" in r.getMessage()]


@pytest.mark.parametrize("failure", [
    RuntimeError(f"source broke on {SECRET.hex()}"),
    redis.ConnectionError("Error 111 connecting to unix socket"),
    Unavailable("keys are not available"),
], ids=["RuntimeError", "redis.ConnectionError", "QkmsError"])
def test_a_source_that_raises_does_not_end_the_loop(failure, caplog):
    source = ScriptedSource([failure] * 3 + [[peer_block(1)]])
    pools = FakePools()
    manager = manager_for(source, pools)
    thread = run_until(manager, lambda: pools.stored.get(("A-B", "B")) == ["A-B:1"])
    stop(manager, thread)
    assert len(step_failures(caplog)) == 1  # three identical failures, one line
    assert SECRET.hex() not in caplog.text


@pytest.mark.parametrize("failure", [redis.ConnectionError("Error 111"), RuntimeError("pool bug")])
def test_a_failing_pool_store_loses_no_block(failure, caplog):
    pools = FakePools([failure] * 3)
    manager = manager_for(ScriptedSource([[peer_block(1)], [peer_block(3)]]), pools)
    due = {"beat": 0.0, "publish": float("inf"), "poll": float("inf"), "sync": float("inf")}
    for _ in range(4):
        manager.step(due)
    assert pools.stored[("A-B", "B")] == ["A-B:1", "A-B:3"]
    assert "link manager step works again after 3 failed attempt(s)" in caplog.messages


def test_heartbeat_is_sent_while_every_step_fails(caplog):
    beats = []
    source = ScriptedSource([RuntimeError("broken")] * 1000)
    manager = manager_for(source, heartbeat=lambda: beats.append(time.monotonic()))
    thread = run_until(manager, lambda: len(beats) >= 2)
    stop(manager, thread)
    assert len(step_failures(caplog)) == 1


def test_a_malformed_peer_answer_does_not_end_the_loop(caplog):
    malformed = {"links": [{"link": "A-C", "owner": "C"}]}  # no available_bits, state, ...
    answers = {"C": lambda: km_wire.halves_from_json(malformed), "B": lambda: [LinkHalf("A-B", "B", 8)]}
    board = FakeBoard()
    manager = manager_for(ScriptedSource([]), transport=FakeTransport(answers), board=board, peers=("B", "C"))
    thread = run_until(manager, lambda: sum(h.owner == "B" for h in board.published) >= 2)  # two poll rounds
    stop(manager, thread)
    assert any("KeyError" in line for line in step_failures(caplog))


# --- the HTTP transport: a malformed answer is an unreachable peer -----------------------

@pytest.fixture(scope="module")
def two_node_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    plans = [NodePlan("A", (), free_port()), NodePlan("B", (), free_port())]
    manifest = write_layout(root, plans, [LinkPlan("A-B", ("A", "B"), {"kind": "simulated"})]).to_dict()
    return load_config(manifest["nodes"]["A"]["config"])


@pytest.mark.parametrize("body", [
    b'{"links": [{"link": "A-B"}]}',
    b'{"links": [{"link": "A-B", "owner": "B", "available_bits": "many", "state": "up", "reason": "",'
    b' "metrics": {}, "observed_at": 0}]}',
    b'{"links": 5}',
    b'[]',
    b'not json',
], ids=["missing-fields", "bad-number", "not-a-list", "not-an-object", "not-json"])
def test_malformed_links_answer_is_unavailable(two_node_config, body):
    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    transport = HttpPeerTransport(two_node_config, http_transport=answer)
    try:
        with pytest.raises(Unavailable, match="peer B sent malformed link state"):
            transport.link_halves("B")
    finally:
        transport.close()


def test_well_formed_links_answer_is_parsed(two_node_config):
    half = LinkHalf("A-B", "B", 4096, observed_at=1.0)
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json=km_wire.halves_to_json([half])))
    transport = HttpPeerTransport(two_node_config, http_transport=answer)
    try:
        assert transport.link_halves("B") == [half]
    finally:
        transport.close()


# --- link source settings ------------------------------------------------------------------

def test_a_bad_own_link_setting_is_named_by_its_full_path():
    config = node_config([{"id": "B-C", "nodes": ["B", "C"]},
                          {"id": "A-B", "nodes": ["A", "B"], "source": {"kind": "simulated", "length_km": -1}}])
    threads = threading.active_count()
    with pytest.raises(ConfigError, match=r"^links\[1\]\.source\.length_km: "):
        validate_link_sources(config)
    with pytest.raises(ConfigError, match=r"^links\[1\]\.source\.length_km: "):
        build_link_ends(config)
    assert threading.active_count() == threads


def test_links_between_other_nodes_need_only_a_known_kind():
    remote_with_odd_settings = {"id": "B-C", "nodes": ["B", "C"], "source": {"kind": "simulated", "length_km": -1}}
    validate_link_sources(node_config([remote_with_odd_settings]))
    unknown = {"id": "B-C", "nodes": ["B", "C"], "source": {"kind": "teleporter"}}
    with pytest.raises(ConfigError, match=r"^links\[0\]\.source\.kind: unknown key source 'teleporter'"):
        validate_link_sources(node_config([unknown]))


def test_valid_sources_are_built_but_not_started():
    config = node_config([{"id": "A-B", "nodes": ["A", "B"], "source": {"kind": "simulated"}}])
    threads = threading.active_count()
    validate_link_sources(config)
    ends = build_link_ends(config)
    assert [end.peer for end in ends] == ["B"]
    assert threading.active_count() == threads


class PoolWatcher(ScriptedSource):
    """Records what the link manager says of its pool (KeySource.observe_pool)."""

    def __init__(self):
        super().__init__([])
        self.observed: list[dict[str, int]] = []

    def observe_pool(self, unused_bits: dict[str, int]) -> None:
        self.observed.append(unused_bits)


def test_sources_hear_how_much_of_their_link_is_unused_here():
    class Levels(FakePools):
        def available_bits(self, link_id, owner) -> int:
            return {"A": 1000, "B": 24}[owner]

    source = PoolWatcher()
    manager = manager_for(source, pools=Levels())
    thread = run_until(manager, lambda: source.observed)
    stop(manager, thread)
    assert source.observed[0] == {"A": 1000, "B": 24}, "each half of the link at this node"
