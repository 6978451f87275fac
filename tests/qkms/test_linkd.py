"""The link manager (qkms/linkd.py) with in-memory fakes: a failing step, whatever it
raises, is logged once and the loop goes on; a malformed peer answer counts as the peer
being unreachable; it never polls its peers, it pushes link state to its neighbours;
link sources are validated under their ``links[i].source`` path."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import hypothesis.strategies as st
import pydantic
import pytest
import redis
from hypothesis import given, settings

from etsi_api import km_wire
from etsi_api.km_client import HttpPeerTransport
from kms.config import PEER_URL, PeerConfig, load_config, parse_config
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
    def __init__(self, halves: dict | None = None):
        self.published: list[LinkHalf] = []
        self.halves = dict(halves or {})

    def publish(self, halves):
        self.published.extend(halves)
        self.halves.update({(h.link_id, h.owner): h for h in halves})

    def read(self):
        return dict(self.halves)


class FakeTransport:
    """push_halves(peer, ...) records the push and answers what ``answers[peer]()``
    returns (a change-log digest) or raises; nothing else is ever asked."""

    def __init__(self, answers: dict[str, Callable[[], str]] | None = None):
        self.answers = answers or {}
        self.pushes: list[tuple[str, list[LinkHalf]]] = []
        self.calls: list[str] = []

    def push_halves(self, peer, halves, changes_digest):
        self.calls.append(f"push_halves {peer}")
        self.pushes.append((peer, list(halves)))
        return self.answers.get(peer, lambda: changes_digest)()

    def fetch_changes(self, peer):
        self.calls.append(f"fetch_changes {peer}")
        return []

    def sync_pool(self, *args):
        self.calls.append("sync_pool")

    def reconfigure(self, config):
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
    due = {"beat": 0.0, "publish": float("inf"), "gossip": float("inf"), "sync": float("inf")}
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


def test_a_malformed_push_answer_does_not_end_the_loop(caplog):
    def malformed():
        raise Unavailable("peer C sent a malformed answer to a link-state push")

    transport = FakeTransport({"C": malformed})
    manager = manager_for(ScriptedSource([]), transport=transport, peers=("B", "C"))
    # The push C refused goes again next round (B's, accepted, waits for its refresh):
    # a second try at C means the loop went on past the failure.
    thread = run_until(manager, lambda: sum(peer == "C" for peer, _ in transport.pushes) >= 2
                       and any(peer == "B" for peer, _ in transport.pushes))
    stop(manager, thread)
    assert step_failures(caplog) == []
    assert any("link state not pushed to C" in line for line in caplog.messages)


def test_it_pushes_to_its_neighbours_and_never_polls():
    """Link state goes out as pushes to the link's other ends, only when there is
    something new or a refresh is due; no peer is ever asked for its halves."""
    transport = FakeTransport()
    manager = manager_for(ScriptedSource([]), transport=transport, peers=("B", "C"))
    due = {"beat": 0.0, "publish": 0.0, "gossip": 0.0, "sync": float("inf")}
    manager.step(due)
    assert sorted(peer for peer, _ in transport.pushes) == ["B", "C"]
    assert [h.owner for _, halves in transport.pushes for h in halves] == ["A", "A"]
    due["gossip"] = 0.0
    manager.step(due)  # nothing changed, no refresh due: nothing sent
    assert len(transport.pushes) == 2
    assert not any(call.startswith(("link_halves", "fetch_changes")) for call in transport.calls)
    assert not hasattr(HttpPeerTransport, "link_halves")


def test_confirmed_blocks_only_go_to_the_links_other_end():
    """Which of B's blocks A holds matters to B alone: B's push gets them, C's does not."""
    source = ScriptedSource([[peer_block(1)]])
    transport = FakeTransport()
    manager = manager_for(source, FakePools(), transport=transport, peers=("B", "C"))
    manager.step({"beat": 0.0, "publish": 0.0, "gossip": 0.0, "sync": float("inf")})
    sent = {peer: halves for peer, halves in transport.pushes}
    assert [h.held_peer_sequences for h in sent["B"] if h.link_id == "A-B"] == [(1,)]
    assert [h.held_peer_sequences for h in sent["C"] if h.link_id == "A-B"] == [()]


def test_a_peer_half_confirms_own_blocks():
    own_block = KeyBlock("A-B:2", SECRET, 2)  # even: A's own half
    pools = FakePools()
    board = FakeBoard({("A-B", "B"): LinkHalf("A-B", "B", 0, observed_at=1.0, held_peer_sequences=(2,))})
    manager = manager_for(ScriptedSource([[own_block]]), pools, board=board)
    manager.step({"beat": 0.0, "publish": float("inf"), "gossip": 0.0, "sync": float("inf")})
    assert pools.stored[("A-B", "A")] == ["A-B:2"]


# --- the HTTP transport: a malformed answer is an unreachable peer -----------------------

@pytest.fixture(scope="module")
def two_node_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    plans = [NodePlan("A", (), free_port()), NodePlan("B", (), free_port())]
    manifest = write_layout(root, plans, [LinkPlan("A-B", ("A", "B"), {"kind": "simulated"})]).to_dict()
    return load_config(manifest["nodes"]["A"]["config"])


@pytest.mark.parametrize("body", [
    b'{"accepted": 1}',
    b'{"changes_digest": 5}',
    b'[]',
    b'not json',
], ids=["no-digest", "bad-digest", "not-an-object", "not-json"])
def test_malformed_push_answer_is_unavailable(two_node_config, body):
    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    transport = HttpPeerTransport(two_node_config, http_transport=answer)
    try:
        with pytest.raises(Unavailable, match="peer B"):
            transport.push_halves("B", [LinkHalf("A-B", "A", 8)], "digest")
    finally:
        transport.close()


def test_a_push_carries_the_halves_and_returns_the_peers_digest(two_node_config):
    half = LinkHalf("A-B", "A", 4096, observed_at=1.0)
    seen = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, json={"accepted": 1, "changes_digest": "theirs"})

    transport = HttpPeerTransport(two_node_config, http_transport=httpx.MockTransport(answer))
    try:
        assert transport.push_halves("B", [half], "mine") == "theirs"
    finally:
        transport.close()
    body = json.loads(seen[0].content)
    assert seen[0].method == "POST" and seen[0].url.path == "/km/v1/links"
    assert km_wire.halves_from_json(body) == [half] and body["changes_digest"] == "mine"


@settings(max_examples=300, derandomize=True, deadline=None)
@given(url=st.from_regex(PEER_URL, fullmatch=True) | st.text().map("https://".__add__))
def test_every_peer_url_the_configuration_accepts_gets_a_km_client(two_node_config, url):
    """The admin API's fuzzing stored a peer at ``https://\\xa0``: the KM client then
    failed every request of the node. A URL gets in only if the transport can call it."""
    try:
        peer = PeerConfig(kme_id="B", url=url)
    except pydantic.ValidationError:
        return
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json={"accepted": 0, "changes_digest": "theirs"}))
    transport = HttpPeerTransport(two_node_config.model_copy(update={"peers": (peer,)}), http_transport=answer)
    try:
        assert transport.push_halves("B", [], "mine") == "theirs"
    finally:
        transport.close()


@pytest.mark.parametrize("peer_clock_offset_s", [-1000.0, 0.0, 1000.0])
def test_a_pushed_report_is_read_on_the_peers_clock(peer_clock_offset_s):
    """A half the peer observed 2 s before it pushed is 2 s old here, whatever the peer's clock says."""
    peer_now = time.time() + peer_clock_offset_s
    half = LinkHalf("A-B", "B", 4096, observed_at=peer_now - 2)
    passed_on = LinkHalf("C-D", "C", 4096, observed_at=peer_now - 2)
    body = {**km_wire.halves_to_json([half, passed_on], now=peer_now), "changes_digest": "x"}
    got, kept = km_wire.halves_push_from_json(body, "B")
    assert replace(got, observed_at=half.observed_at, owner_observed_at=None) == half
    assert got.version == half.observed_at, "its version stays the owner's time"
    assert 2 <= time.time() - got.observed_at < 5 and got.fresh()
    assert kept == passed_on, "a half passed on keeps its version"


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


def satellite_link(link_id: str, offset_s: float, **schedule) -> dict:
    section = {"kind": "satellite", "pass_interval_s": 100, "pass_duration_s": 10, "pass_offset_s": offset_s}
    return {"id": link_id, "nodes": link_id.split("-"), "source": {**section, **schedule}}


def test_two_downlinks_of_one_satellite_node_must_not_overlap():
    apart = [satellite_link("G1-SAT", 0), satellite_link("SAT-G2", 50)]
    validate_link_sources(node_config(apart, kme_id="SAT"))
    overlapping = [satellite_link("G1-SAT", 0), satellite_link("SAT-G2", 5)]
    with pytest.raises(ConfigError, match=r"^links\[1\]\.source\.pass_offset_s: its passes overlap"):
        validate_link_sources(node_config(overlapping, kme_id="SAT"))
    other_period = [satellite_link("G1-SAT", 0), satellite_link("SAT-G2", 50, pass_interval_s=200)]
    with pytest.raises(ConfigError, match=r"^links\[1\]\.source\.pass_interval_s: "):
        validate_link_sources(node_config(other_period, kme_id="SAT"))
    validate_link_sources(node_config(overlapping, kme_id="G1"))  # one downlink each at the stations


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
