"""The KeySource contract (kms/sources.py), run against every source the registry knows
(built-ins and ``qkms.key_sources`` entry points).

Two kinds of source make different promises:

- A **link source** (``on_demand`` False: simulated QKD, a vendor QKD device) feeds both
  ends of one link and produces over time. The suite builds BOTH ENDS as the link
  manager does (qkms/linkd.py, build_link here): two instances from the same config
  section, contexts KME-A and KME-B with the same link_id, each data directory holding
  its copy of the link's shared files (the seed file), each node its block inbox, and
  each end a channel to the other end's responder (a never-started instance, as in a
  web worker; sources whose ends need no conversation never use it). Both ends are
  started and fetched from until each has handed out STEADY_BLOCKS blocks since both
  run, end A always with a budget that holds a whole block, end B also with budgets
  too small for the blocks waiting there (record_link_run). Promised: started
  together, both ends hand out the same blocks (same ids, same sequences, identical
  material; none missing at either end but the one block an end may have been too
  late for), in increasing sequence; every block is handed out once, never empty, in
  whole bytes, never beyond the budget (a block that does not fit stays for a later
  fetch, neither split nor lost); what the ends say to each other carries no block's
  material.
- A **node-local source** (``on_demand`` True: the node's CSPRNG) serves one node's own
  SAEs and has no peer, so nothing to agree with. Promised: a fetch of at least one byte
  is filled at once, in whole bytes, within the budget (the service answers 503 when
  it is not); no material and no block id is handed out twice.

Every source: kind and mode declared, nothing below one byte, health in the known
states, provenance that round-trips, ``repr`` without material, ``stop`` idempotent and
harmless before ``start``, unknown settings rejected by name, validation that starts
nothing.

A new source gets all of this by being registered; if it needs settings (a device
address, a seed file), its entry in CONTRACT_CONFIGS gives them: a registered source
that cannot be built fails here rather than going untested. A source fed by outside
processes (a vendor device: here a pair of mock devices) names a ``services`` fixture
that starts them for the recorded run; that run is then in the integration tier, and
the unit-tier checks build the source from placeholder settings that reach nothing. The checks themselves are
run against deliberately broken sources first (the end of this file), so each is known
to catch what it names. Material is compared by digest and never printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kms.csprng_source import CsprngSource
from kms.errors import ConfigError
from kms.keys import KeyBlock, Provenance
from kms.source_registry import (BUILTIN_SOURCES, available_sources, build_source, known_kinds, require_known_kind,
                                 source_class, validate_source)
from kms.sources import KeySource, LinkChannel, SourceContext, SourceHealth
from kms.storage import open_memory_storage
from qkms.layout import free_port
from tests.support.conditions import wait_until
from tests.support.devices import MockDevicePair, PushReceiver
from tests.support.pqc import PQC_SECTION, end_files, write_files

KME_A, KME_B = "KME-A", "KME-B"
LINK_ID = f"{KME_A}--{KME_B}"
HEALTH_STATES = {"up", "degraded", "down"}
#: Blocks each end must hand out once both run, for the comparison of the two ends.
STEADY_BLOCKS = 3
#: Ends started together: one may lack the block that was in production when it started.
MAX_START_SKEW_BLOCKS = 1
#: Blocks that wait at end B while it is asked with SMALL_BUDGETS_BITS.
HELD_BLOCKS = 2
#: Budgets too small for a block of a real link (a block that fits is handed out whole
#: and compared like any other).
SMALL_BUDGETS_BITS = (-8, 0, 7, 8, 64, 1001, 8192)
#: Budgets of single fetches from a node-local source.
NODE_BUDGETS_BITS = (8, 64, 256, 1001, 8192, 65536)


@dataclass(frozen=True)
class ContractConfig:
    """How to build a source of one kind for these tests, on loopback, without hardware."""

    #: The source's config section, as a link's ``source`` (without ``kind``) or the node's.
    section: dict[str, Any] = field(default_factory=dict)
    #: Files each end's data directory holds, relative path -> content (a link's seed file).
    shared_files: dict[str, bytes] = field(default_factory=dict)
    #: Files only one end holds: KME_ID -> relative path -> content (its private key).
    end_files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    #: A fetch budget that holds any one block of this source.
    block_budget_bits: int = 1 << 20
    #: How long STEADY_BLOCKS blocks may take at both ends (generous: a loaded machine).
    blocks_timeout_s: float = 120.0
    #: Outside processes the recorded run needs, started under ``root`` for the two
    #: nodes' stores (``node_stores``); the context yields the section to use instead of ``section``.
    services: Callable[[Path, dict[str, dict[str, Any]]], AbstractContextManager[dict[str, Any]]] | None = None


#: Settings of a device-fed link end that reach nothing (unit tier: built, maybe
#: started, never fed) and the placeholder TLS files they name.
UNREACHABLE_DEVICE = {"url": "https://127.0.0.1:9", "server_name": "qkd-device.invalid", "cert": "device/node.crt",
                      "key": "device/node.key", "ca": "device/ca.crt", "timeout_s": 0.5}
PLACEHOLDER_TLS_FILES = {path: b"placeholder" for path in ("device/node.crt", "device/node.key", "device/ca.crt")}
PUSH_CHUNKS = {"key_chunk_size_bytes": 256, "chunks_per_block": 4}


@contextmanager
def mock_device_pair(root: Path, stores: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A pair of ``qkms mock-device`` processes for link LINK_ID: one section for both ends."""
    pair = MockDevicePair.write(root / "mock-devices", LINK_ID, (KME_A, KME_B))
    pair.start()
    try:
        yield pair.both_ends_section()
    finally:
        pair.close()


@contextmanager
def mock_device_pair_004(root: Path, stores: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A pair of ETSI 004 ``qkms mock-device`` processes for link LINK_ID, each pushing to
    its node's key-material endpoint (the node's blueprint, alone, leaving the chunks in
    that node's inbox, as a node does)."""
    ports = {kme_id: free_port() for kme_id in (KME_A, KME_B)}
    pair = MockDevicePair.write(root / "mock-devices", LINK_ID, (KME_A, KME_B), "etsi004",
                                {kme_id: f"https://127.0.0.1:{port}" for kme_id, port in ports.items()})
    section = {**pair.both_ends_section(), **PUSH_CHUNKS}
    with ExitStack() as running:
        for kme_id, port in ports.items():
            end = _build("qkd-device-004", section, link_end_context("qkd-device-004", root, kme_id,
                                                                     **stores[kme_id]))
            running.enter_context(PushReceiver(port, pair.ca, pair.ca_path, root / "receivers", kme_id, end))
        pair.start()
        running.callback(pair.close)
        yield section


#: kind -> its ContractConfig; a kind that is not here is built from an empty section.
CONTRACT_CONFIGS: dict[str, ContractConfig] = {
    # Efficient detectors and small frames: a block of 30-45 kbit every second at each
    # end, about 0.2 s of CPU per frame and end; seeded by a link seed file, as deployed.
    # At the default nice 10 a loaded machine can stretch one end's frames past the 1 s
    # slot, and that end then runs every other pair of slots (a subset of the other's
    # blocks, by design); the contract wants both ends to run every slot.
    "simulated": ContractConfig(
        section={"preset": "snspd-illustrative", "length_km": 10, "pulses_per_frame": 3_000_000,
                 "frame_interval_s": 1.0, "seed_file": f"links/{LINK_ID}.seed", "worker_nice": 0},
        shared_files={f"links/{LINK_ID}.seed": hashlib.sha256(b"qkms source contract link seed").digest()},
    ),
    # A pair of mock ETSI 014 devices (real processes, a simulated link inside): blocks of
    # 32 device keys, about a dozen a second at each end.
    "qkd-device": ContractConfig(
        section={"profile": "etsi014-generic", "sae_id": "kms-KME-A", "peer_sae_id": "kms-KME-B", **UNREACHABLE_DEVICE},
        shared_files=PLACEHOLDER_TLS_FILES,
        services=mock_device_pair,
    ),
    # A pair of mock ETSI 004 devices pushing chunks of 256 bytes, 20 a second; blocks of 4 chunks.
    "qkd-device-004": ContractConfig(
        section={"profile": "etsi004-push", **PUSH_CHUNKS, **UNREACHABLE_DEVICE},
        shared_files=PLACEHOLDER_TLS_FILES,
        services=mock_device_pair_004,
    ),
    # ML-KEM with ML-DSA: each end its own signing key and the other's pinned public key;
    # a 1 KiB block 20 times a second, the initiator (KME-A) paced by its worker.
    "ml-kem": ContractConfig(
        section={k: v for k, v in PQC_SECTION.items() if k != "kind"},
        end_files={KME_A: end_files(KME_A, KME_B), KME_B: end_files(KME_B, KME_A)},
        blocks_timeout_s=60.0,
    ),
    # BBM92 with efficient detectors at 5 km: ~20 kbit of key per 0.3 s frame.
    "entangled": ContractConfig(
        section={"length_km": 5, "detector_efficiency": 0.6, "pulse_rate_hz": 1e7, "frame_interval_s": 0.3,
                 "seed_file": f"links/{LINK_ID}.seed"},
        shared_files={f"links/{LINK_ID}.seed": hashlib.sha256(b"qkms source contract link seed").digest()},
    ),
    # Short frames: the contract needs a few blocks, not a realistic rate.
    "repeater-chain": ContractConfig(section={"frame_interval_s": 0.3, "rounds": 2000}),
    # One pass that never ends, so that every frame has key.
    "satellite": ContractConfig(section={"frame_interval_s": 0.3, "pass_interval_s": 60, "pass_duration_s": 60}),
}

KINDS = sorted(available_sources())
LINK_KINDS = [kind for kind in KINDS if not source_class(kind).on_demand]
#: The recorded run of each link kind; a kind that needs outside processes is in the integration tier.
LINK_RUNS = [pytest.param(kind, marks=[pytest.mark.integration] if CONTRACT_CONFIGS.get(kind, ContractConfig()).services
                          else []) for kind in LINK_KINDS]
NODE_KINDS = [kind for kind in KINDS if source_class(kind).on_demand]


def contract_config(kind: str) -> ContractConfig:
    return CONTRACT_CONFIGS.get(kind, ContractConfig())


def _build(kind: str, section: dict[str, Any], context: SourceContext) -> KeySource:
    try:
        return build_source(kind, dict(section), context)
    except ConfigError as exc:
        pytest.fail(f"source {kind!r} cannot be built for the contract ({exc.message}); "
                    f"give it settings in CONTRACT_CONFIGS")


# --- building sources: both ends of a link, or a node's own ---------------------------------------


class LoopbackChannel(LinkChannel):
    """The KM channel of one link end as a direct call into the other end's responder: a
    never-started instance of the same source at the peer, built on first use, leaving
    its blocks in the peer's inbox (as kms/link_exchange.LinkResponders does). Messages
    and replies go through JSON, as on the wire, and are kept for inspection."""

    def __init__(self, build_responder: Callable[[], KeySource]):
        self._build_responder = build_responder
        self._responder: KeySource | None = None
        self.transcript: list[str] = []

    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        self._responder = self._responder or self._build_responder()
        self.transcript.append(json.dumps(message))
        self.transcript.append(json.dumps(self._responder.respond(json.loads(self.transcript[-1]))))
        return json.loads(self.transcript[-1])


@dataclass
class LinkEnds:
    """The two ends of one link, each a source of the same kind, and their channels."""

    a: KeySource
    b: KeySource
    channels: tuple[LoopbackChannel, ...] = ()

    def __iter__(self):
        return iter((self.a, self.b))

    def start(self) -> None:
        self.a.start()
        self.b.start()

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


def link_end_context(kind: str, root: Path, kme_id: str, **wiring) -> SourceContext:
    """The context of ``kme_id``'s end of link LINK_ID, its data directory (under ``root``)
    holding its copy of the link's shared files; ``wiring`` adds channel and inbox."""
    data_dir = root / kme_id
    data_dir.mkdir(parents=True, exist_ok=True)
    for relative, content in contract_config(kind).shared_files.items():
        (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / relative).write_bytes(content)
    write_files(data_dir, contract_config(kind).end_files.get(kme_id, {}))
    return SourceContext(kme_id, KME_B if kme_id == KME_A else KME_A, LINK_ID, str(data_dir), **wiring)


def build_link(kind: str, root: Path, section: dict[str, Any] | None = None,
               stores: dict[str, dict[str, Any]] | None = None) -> LinkEnds:
    """Both ends of link LINK_ID served by ``kind``, built as the link manager builds them
    (qkms/linkd.py): the same section (``section``, or the kind's contract section),
    contexts KME-A and KME-B, each node with its inbox and sequence ledger (``stores``, or
    new ones), and each end with a channel to the other end's responder."""
    section = contract_config(kind).section if section is None else section
    stores = stores or node_stores()

    def responder(kme_id: str) -> Callable[[], KeySource]:
        return lambda: _build(kind, section, link_end_context(kind, root, kme_id, **stores[kme_id]))

    channels = (LoopbackChannel(responder(KME_B)), LoopbackChannel(responder(KME_A)))
    ends = [_build(kind, section, link_end_context(kind, root, kme_id, channel=channel, **stores[kme_id]))
            for kme_id, channel in zip((KME_A, KME_B), channels)]
    return LinkEnds(*ends, channels)


def node_stores() -> dict[str, dict[str, Any]]:
    """Each node's block inbox and sequence ledger (in memory), as context wiring."""
    storages = {kme_id: open_memory_storage(kme_id) for kme_id in (KME_A, KME_B)}
    return {kme_id: {"inbox": storage.inbox, "ledger": storage.ledger} for kme_id, storage in storages.items()}


def build_node_source(kind: str, root: Path) -> KeySource:
    """The source ``kind`` serving node KME-A's own SAEs (no peer, no link), as kms.node does."""
    return _build(kind, contract_config(kind).section, SourceContext(KME_A, data_dir=str(root)))


def build_every_instance(kind: str, root: Path) -> list[KeySource]:
    """Both ends for a link source, the one instance for a node-local source."""
    return [build_node_source(kind, root)] if source_class(kind).on_demand else list(build_link(kind, root))


# --- what a run of a link looks like, and the checks on it -------------------------------------------


@dataclass(frozen=True)
class Fetch:
    """One call of ``fetch``: the budget and what came back."""

    budget_bits: int
    blocks: tuple[KeyBlock, ...]


def handed_out(log: list[Fetch]) -> list[KeyBlock]:
    return [block for fetch in log for block in fetch.blocks]


def digest(block: KeyBlock) -> str:
    return hashlib.sha256(block.material).hexdigest()


def steady_blocks(a: list[KeyBlock], b: list[KeyBlock]) -> tuple[list[KeyBlock], list[KeyBlock]]:
    """The blocks each end handed out while both ran: sequences from the later end's first
    to the earlier end's last (an end that joined a block later, or was last fetched a
    little earlier, lacks blocks outside that window)."""
    if not a or not b:
        return [], []
    low, high = max(a[0].sequence, b[0].sequence), min(a[-1].sequence, b[-1].sequence)
    return [x for x in a if low <= x.sequence <= high], [x for x in b if low <= x.sequence <= high]


def leading_blocks(blocks: list[KeyBlock], other: list[KeyBlock]) -> int:
    """How many blocks of ``blocks`` came before the other end's first."""
    return sum(block.sequence < other[0].sequence for block in blocks) if other else len(blocks)


def check_fetches(log: list[Fetch]) -> None:
    """Every fetch: KeyBlocks only, each with an id and whole, non-empty bytes, totalling
    no more than the budget."""
    for fetch in log:
        blocks = fetch.blocks
        assert all(isinstance(block, KeyBlock) for block in blocks), "fetch returned something else than KeyBlocks"
        assert all(isinstance(block.block_id, str) and block.block_id for block in blocks), "a block without id"
        assert all(isinstance(block.material, bytes) and block.material for block in blocks), "an empty block"
        assert all(block.size_bits == 8 * len(block.material) for block in blocks), "size_bits is not whole bytes"
        total = sum(block.size_bits for block in blocks)
        assert total <= max(fetch.budget_bits, 0), f"{total} bits handed out for a budget of {fetch.budget_bits}"


def check_handed_out_once(blocks: list[KeyBlock]) -> None:
    ids = [block.block_id for block in blocks]
    assert len(set(ids)) == len(ids), "a block id was handed out twice"
    digests = [digest(block) for block in blocks]
    assert len(set(digests)) == len(digests), "the same material was handed out twice"


def check_in_sequence(blocks: list[KeyBlock]) -> None:
    sequences = [block.sequence for block in blocks]
    assert sequences == sorted(set(sequences)), "blocks not handed out in increasing sequence"


def check_ends_agree(a: list[KeyBlock], b: list[KeyBlock]) -> None:
    """Started together, the ends hand out the same blocks (ids, sequences, material); one
    may lack the single block in production when it started."""
    steady_a, steady_b = steady_blocks(a, b)
    assert len(steady_a) >= STEADY_BLOCKS and len(steady_b) >= STEADY_BLOCKS, \
        f"only {len(steady_a)} and {len(steady_b)} blocks while both ends ran"
    skew = (leading_blocks(a, b), leading_blocks(b, a))
    assert max(skew) <= MAX_START_SKEW_BLOCKS, f"the ends handed out different blocks: {skew} before the other's first"
    assert [(x.block_id, x.sequence) for x in steady_a] == [(x.block_id, x.sequence) for x in steady_b], \
        "the ends handed out different blocks"
    assert [digest(x) for x in steady_a] == [digest(x) for x in steady_b], "the ends hold different material"


def check_repr_hides_material(blocks: list[KeyBlock]) -> None:
    for block in blocks:
        shown = repr(block)
        leaks = block.material.hex() in shown or repr(block.material) in shown
        assert not leaks, f"repr of block {block.block_id} shows its material"


def check_channel_carries_no_material(transcript: list[str], blocks: list[KeyBlock]) -> None:
    """What the ends said to each other holds no block's material, in hex or Base64."""
    text = "\n".join(transcript)
    shown = sum(block.material.hex() in text or base64.b64encode(block.material).decode() in text for block in blocks)
    assert shown == 0, f"{shown} blocks' material went over the link channel in the clear"


def check_link_run(run: LinkRun) -> None:
    """Every promise of a link source, on a recorded run of its two ends."""
    for log in (run.a, run.b):
        check_fetches(log)
        check_handed_out_once(handed_out(log))
        check_in_sequence(handed_out(log))
        check_repr_hides_material(handed_out(log))
    check_ends_agree(handed_out(run.a), handed_out(run.b))
    check_channel_carries_no_material(run.transcript, handed_out(run.a) + handed_out(run.b))


@dataclass
class LinkRun:
    """The fetches from both ends of a link, their health at the end, and what they said
    to each other."""

    a: list[Fetch]
    b: list[Fetch]
    health: list[SourceHealth]
    transcript: list[str]


def record_link_run(link: LinkEnds, block_budget_bits: int, timeout_s: float) -> LinkRun:
    """Start both ends and fetch from them (``block_budget_bits`` holds a block):

    1. both ends, until each has handed out a block;
    2. end A only, until it has handed out HELD_BLOCKS blocks more than B: those wait at B;
    3. end B once with each of SMALL_BUDGETS_BITS (too small for the waiting blocks), then
       both ends until each handed out STEADY_BLOCKS blocks while both ran."""
    a: list[Fetch] = []
    b: list[Fetch] = []

    def fetch(end: KeySource, log: list[Fetch], budget_bits: int) -> list[KeyBlock]:
        log.append(Fetch(budget_bits, tuple(end.fetch(budget_bits))))
        return handed_out(log)

    def both() -> tuple[list[KeyBlock], list[KeyBlock]]:
        return fetch(link.a, a, block_budget_bits), fetch(link.b, b, block_budget_bits)

    def a_ahead() -> bool:
        last_b = handed_out(b)[-1].sequence
        return sum(block.sequence > last_b for block in fetch(link.a, a, block_budget_bits)) >= HELD_BLOCKS

    link.start()
    try:
        wait_until(lambda: all(both()), "a first block at both ends of the link", timeout_s)
        wait_until(a_ahead, f"{HELD_BLOCKS} more blocks at end A", timeout_s)
        for budget_bits in SMALL_BUDGETS_BITS:
            fetch(link.b, b, budget_bits)
        wait_until(lambda: all(len(blocks) >= STEADY_BLOCKS for blocks in steady_blocks(*both())),
                   f"{STEADY_BLOCKS} blocks at both ends of the link", timeout_s)
        health = [end.health() for end in link]
    finally:
        link.stop()
    return LinkRun(a, b, health, [line for channel in link.channels for line in channel.transcript])


# --- link sources: both ends -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=LINK_RUNS)
def link_run(request, tmp_path_factory) -> LinkRun:
    """One recorded run of both ends of a link per link-source kind, shared by the tests
    below (with the kind's outside processes running, if it has any)."""
    config = contract_config(request.param)
    root = tmp_path_factory.mktemp(f"link-{request.param}")
    stores = node_stores()
    with (config.services(root, stores) if config.services else nullcontext(None)) as section:
        link = build_link(request.param, root, section, stores)
        return record_link_run(link, config.block_budget_bits, config.blocks_timeout_s)


def test_both_ends_hand_out_the_same_blocks(link_run: LinkRun) -> None:
    check_ends_agree(handed_out(link_run.a), handed_out(link_run.b))


def test_each_end_hands_out_each_block_once_in_sequence(link_run: LinkRun) -> None:
    for log in (link_run.a, link_run.b):
        check_handed_out_once(handed_out(log))
        check_in_sequence(handed_out(log))


def test_blocks_are_whole_never_empty_and_within_the_budget(link_run: LinkRun) -> None:
    check_fetches(link_run.a)
    check_fetches(link_run.b)
    # End B was asked with each small budget while HELD_BLOCKS blocks waited there, and
    # still has the same blocks as A (test_both_ends_hand_out_the_same_blocks): none was
    # split or lost.
    assert [f.budget_bits for f in link_run.b if f.budget_bits in SMALL_BUDGETS_BITS] == list(SMALL_BUDGETS_BITS)


def test_link_block_repr_hides_the_material(link_run: LinkRun) -> None:
    check_repr_hides_material(handed_out(link_run.a) + handed_out(link_run.b))


def test_link_ends_report_their_health(link_run: LinkRun) -> None:
    for health in link_run.health:
        check_health(health)


def test_the_ends_exchange_no_key_material(link_run: LinkRun) -> None:
    check_channel_carries_no_material(link_run.transcript, handed_out(link_run.a) + handed_out(link_run.b))


# --- node-local sources --------------------------------------------------------------------------------


@pytest.fixture(params=NODE_KINDS)
def node_source(request, tmp_path: Path) -> KeySource:
    source = build_node_source(request.param, tmp_path)
    source.start()
    yield source
    source.stop()


@pytest.mark.parametrize("budget_bits", NODE_BUDGETS_BITS)
def test_node_source_fills_a_request_at_once_in_whole_bytes(node_source: KeySource, budget_bits: int) -> None:
    fetch = Fetch(budget_bits, tuple(node_source.fetch(budget_bits)))
    check_fetches([fetch])
    assert sum(block.size_bits for block in fetch.blocks) == budget_bits // 8 * 8


def test_node_source_never_hands_out_anything_twice(node_source: KeySource) -> None:
    blocks = [block for _ in range(200) for block in node_source.fetch(256)]
    assert len(blocks) >= 200
    check_handed_out_once(blocks)


def test_node_block_repr_hides_the_material(node_source: KeySource) -> None:
    blocks = node_source.fetch(256)
    assert blocks
    check_repr_hides_material(blocks)


# --- every source --------------------------------------------------------------------------------------


def check_health(health: SourceHealth) -> None:
    assert isinstance(health, SourceHealth)
    assert health.state in HEALTH_STATES
    assert isinstance(health.reason, str)
    assert all(isinstance(name, str) and isinstance(value, (int, float)) for name, value in health.metrics.items())


def check_provenance(provenance: Provenance) -> None:
    assert isinstance(provenance, Provenance)
    assert provenance.sources and all(provenance.sources)
    assert Provenance.from_json(provenance.to_json()) == provenance


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


def test_the_registry_offers_both_kinds_of_source() -> None:
    # Without this an empty LINK_KINDS or NODE_KINDS would leave half the suite unrun.
    assert {"simulated", "ml-kem", "qkd-device", "qkd-device-004"} <= set(LINK_KINDS), "the link sources' entry points are not installed (pip install -e .)"
    assert "csprng" in NODE_KINDS


def test_source_declares_its_kind_and_mode(kind: str) -> None:
    cls = source_class(kind)
    assert cls.kind == kind
    assert isinstance(cls.on_demand, bool)


@pytest.mark.parametrize("max_bits", [0, 1, 7, -8])
def test_fetch_below_one_byte_yields_nothing(kind: str, tmp_path: Path, max_bits: int) -> None:
    for source in build_every_instance(kind, tmp_path):
        assert source.fetch(max_bits) == []


def test_health_and_provenance_before_any_block(kind: str, tmp_path: Path) -> None:
    for source in build_every_instance(kind, tmp_path):
        check_health(source.health())
        check_provenance(source.provenance)


def test_stop_is_idempotent(kind: str, tmp_path: Path) -> None:
    for source in build_every_instance(kind, tmp_path):
        source.start()
        source.stop()
        source.stop()
        check_health(source.health())


def test_stop_without_start_is_harmless(kind: str, tmp_path: Path) -> None:
    for source in build_every_instance(kind, tmp_path):
        source.stop()
        source.stop()
        check_health(source.health())


def test_unknown_setting_is_rejected_by_name(kind: str, tmp_path: Path) -> None:
    section = {**contract_config(kind).section, "no_such_setting": 1}
    context = link_end_context(kind, tmp_path, KME_A)
    with pytest.raises(ConfigError, match="no_such_setting"):
        build_source(kind, section, context)
    with pytest.raises(ConfigError, match="no_such_setting"):
        validate_source(kind, section, context)


def test_validating_starts_nothing(kind: str, tmp_path: Path) -> None:
    """``qkms serve`` validates every link source before it starts any process."""
    context = link_end_context(kind, tmp_path, KME_A)
    threads = set(threading.enumerate())
    validate_source(kind, dict(contract_config(kind).section), context)
    assert set(threading.enumerate()) == threads


# --- the registry --------------------------------------------------------------------------------------


def test_builtins_are_available() -> None:
    sources = available_sources()
    assert BUILTIN_SOURCES.items() <= sources.items()
    assert sources["csprng"] is CsprngSource
    assert all(isinstance(cls, type) and issubclass(cls, KeySource) for cls in sources.values())


def test_unknown_kind_is_a_config_error_listing_the_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_source("qkd-teleporter", {}, SourceContext(KME_A, data_dir=str(tmp_path)))
    message = caught.value.message
    assert message.startswith("kind: ") and "qkd-teleporter" in message
    for known in available_sources():
        assert known in message
    with pytest.raises(ConfigError) as by_name:
        require_known_kind("qkd-teleporter")
    assert by_name.value.message == message


def test_known_kinds_are_the_available_sources() -> None:
    assert known_kinds() == sorted(available_sources())
    for kind in known_kinds():
        require_known_kind(kind)
        assert source_class(kind) is available_sources()[kind]


# --- csprng specifics ----------------------------------------------------------------------------------


def test_csprng_rejects_unknown_settings_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_source("csprng", {"rate_bps": 1000, "entropy": "hw"}, SourceContext(KME_A, data_dir=str(tmp_path)))
    assert caught.value.message == "entropy, rate_bps: unknown setting for the csprng source"


def test_csprng_provenance_names_the_node(tmp_path: Path) -> None:
    provenance = build_node_source("csprng", tmp_path).provenance
    assert provenance.sources == ("csprng",) and provenance.route == (KME_A,)


# --- the checks catch broken sources -------------------------------------------------------------------


class ScriptedLinkEnd(KeySource):
    """An honest in-memory link end: block k (256, 512 or 768 bits, the same at either end)
    is ready SCRIPTED_INTERVAL_S * k after start; blocks are handed out whole, in order,
    within the budget."""

    kind = "scripted-link"
    on_demand = False

    def __init__(self, kme_id: str):
        self.kme_id = kme_id
        self.started = time.monotonic()
        self.produced = 0
        self.queue: deque[KeyBlock] = deque()

    @classmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "ScriptedLinkEnd":
        return cls(context.kme_id)

    def start(self) -> None:
        self.started = time.monotonic()

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        while self.produced <= (time.monotonic() - self.started) / SCRIPTED_INTERVAL_S:
            material = hashlib.sha256(f"block {self.produced}".encode()).digest() * (1 + self.produced % 3)
            self.queue.append(KeyBlock(f"{LINK_ID}:{self.produced}", material, self.produced))
            self.produced += 1
        out, budget = [], max_bits
        while self.queue and self.queue[0].size_bits <= budget:
            budget -= self.queue[0].size_bits
            out.append(self.queue.popleft())
        return out

    def health(self) -> SourceHealth:
        return SourceHealth("up")

    @property
    def provenance(self) -> Provenance:
        return Provenance(("scripted",))


SCRIPTED_INTERVAL_S = 0.02


class RepeatsABlock(ScriptedLinkEnd):
    repeated = False

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        out = super().fetch(max_bits)
        if out and not self.repeated:
            self.repeated = True
            self.queue.appendleft(out[-1])  # handed out, and to be handed out again
        return out


class OtherBytesAtB(ScriptedLinkEnd):
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        flip = int(self.kme_id == KME_B)
        return [KeyBlock(b.block_id, bytes(x ^ flip for x in b.material), b.sequence) for b in super().fetch(max_bits)]


class OtherIdsAtB(ScriptedLinkEnd):
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        suffix = "-b" if self.kme_id == KME_B else ""
        return [KeyBlock(b.block_id + suffix, b.material, b.sequence) for b in super().fetch(max_bits)]


class SplitsToFit(ScriptedLinkEnd):
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        out = super().fetch(max_bits)
        if not out and self.queue and max_bits >= 8:
            head = self.queue.popleft()
            out = [KeyBlock(head.block_id, head.material[:max_bits // 8], head.sequence)]
        return out


class DropsWhatDoesNotFit(ScriptedLinkEnd):
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        out = super().fetch(max_bits)
        if not out and self.queue and max_bits > 0:
            self.queue.popleft()
        return out


class OverBudget(ScriptedLinkEnd):
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        out = super().fetch(max_bits)
        return out or ([self.queue.popleft()] if self.queue and max_bits > 0 else [])


class EmptyBlocks(ScriptedLinkEnd):
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        return [KeyBlock(b.block_id, b.material if b.sequence != 2 else b"", b.sequence)
                for b in super().fetch(max_bits)]


class ShowsMaterial(KeyBlock):
    def __repr__(self) -> str:
        return f"ShowsMaterial({self.material!r})"


class LeaksInRepr(ScriptedLinkEnd):
    def fetch(self, max_bits: int) -> list[KeyBlock]:
        return [ShowsMaterial(b.block_id, b.material, b.sequence) for b in super().fetch(max_bits)]


#: Each broken link source, and the complaint of the check that must catch it.
BROKEN_LINK_SOURCES = [
    (RepeatsABlock, "handed out twice"),
    (OtherBytesAtB, "different material"),
    (OtherIdsAtB, "different blocks"),
    (SplitsToFit, "different material"),
    (DropsWhatDoesNotFit, "different blocks"),
    (OverBudget, "bits handed out for a budget"),
    (EmptyBlocks, "an empty block"),
    (LeaksInRepr, "shows its material"),
]


def scripted_run(cls: type[ScriptedLinkEnd]) -> LinkRun:
    return record_link_run(LinkEnds(cls(KME_A), cls(KME_B)), 1 << 12, timeout_s=30)


def test_the_checks_pass_an_honest_link() -> None:
    check_link_run(scripted_run(ScriptedLinkEnd))


@pytest.mark.parametrize("broken, complaint", BROKEN_LINK_SOURCES, ids=[cls.__name__ for cls, _ in BROKEN_LINK_SOURCES])
def test_the_checks_catch_a_broken_link_source(broken: type[ScriptedLinkEnd], complaint: str) -> None:
    run = scripted_run(broken)
    with pytest.raises(AssertionError, match=complaint):
        check_link_run(run)


def test_the_check_catches_material_on_the_channel() -> None:
    run = scripted_run(ScriptedLinkEnd)
    leaked = handed_out(run.a)[1]
    run.transcript.append(json.dumps({"key": base64.b64encode(leaked.material).decode()}))
    with pytest.raises(AssertionError, match="went over the link channel"):
        check_link_run(run)
