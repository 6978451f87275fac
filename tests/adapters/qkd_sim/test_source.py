"""The ``simulated`` key source: config, both ends agreeing, eavesdroppers, queue, worker.

Frames are driven with ``run_frame`` (no waiting on wall-clock slots) on a fast
configuration: the illustrative SNSPD preset with 3e6 pulses per frame gives a
positive finite-key at 10 km in well under a second.  Key material is only ever
compared in memory or by digest, never shown.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from pathlib import Path

import pytest

import adapters.qkd_sim.source as source_module
from adapters.qkd_sim import EveSpec, LinkRun, run_link
from adapters.qkd_sim.source import SimulatedQkdSource
from adapters.qkd_sim.source_config import read_eve_file
from adapters.qkd_sim.source_config import frame_seed, parse_settings, shared_secret
from kms import source_registry
from kms.errors import ConfigError
from kms.keys import KeyBlock
from kms.sources import SourceContext
from tests.support.conditions import wait_until

FAST = {"preset": "snspd-illustrative", "length_km": 10, "pulses_per_frame": 3_000_000,
        "frame_interval_s": 0.2}
LINK = "KME-A--KME-B"
FRAMES = (1000, 1001, 1002)


def context(kme: str = "KME-A", peer: str = "KME-B", link_id: str = LINK,
            data_dir: Path | None = None) -> SourceContext:
    return SourceContext(kme, peer, link_id, None if data_dir is None else str(data_dir))


def build(section: dict | None = None, **ctx) -> SimulatedQkdSource:
    return SimulatedQkdSource.from_config(dict(FAST if section is None else section), context(**ctx))


def digest(block: KeyBlock | None) -> str | None:
    return None if block is None else hashlib.sha256(block.material).hexdigest()


@pytest.fixture(scope="module")
def two_ends() -> tuple[list[KeyBlock | None], list[KeyBlock | None]]:
    alice, bob = build(), build(kme="KME-B", peer="KME-A")
    return [alice.run_frame(k) for k in FRAMES], [bob.run_frame(k) for k in FRAMES]


# --- configuration ------------------------------------------------------------------------


def test_empty_section_gives_the_documented_defaults() -> None:
    settings = parse_settings({})
    assert (settings.preset, settings.length_km, settings.pulses_per_frame) == ("gys", 10.0, 400_000_000)
    assert (settings.frame_interval_s, settings.qber_alarm_margin, settings.eve) == (120.0, 0.02, None)
    assert build({}).health().state == "down"


@pytest.mark.parametrize("section, expected", [
    ({"length_km": -1}, "length_km: "),
    ({"pulses_per_frame": 0}, "pulses_per_frame: "),
    ({"frame_interval_s": 0}, "frame_interval_s: "),
    ({"qber_alarm_margin": 0.7}, "qber_alarm_margin: "),
    ({"eve": {"kind": "telepathy"}}, "eve.kind: unknown attack 'telepathy'"),
    ({"eve": {"kind": "pns", "fraction": 2}}, "eve.fraction: "),
    ({"eve": {"fraction": 0.5}}, "eve.kind: "),
    ({"mu": 0.05}, "mu: must be > nu"),
    ({"preset": "no-such-device"}, "preset: unknown name 'no-such-device'"),
    ({"no_such_setting": 1}, "no_such_setting: unknown setting for the simulated source"),
])
def test_bad_settings_are_named_relative_to_the_section(section: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(section)
    assert caught.value.message.startswith(expected), caught.value.message


def test_relative_seed_file_resolves_against_the_data_dir(tmp_path: Path) -> None:
    (tmp_path / "link.seed").write_bytes(bytes(range(32)))
    settings = parse_settings({"seed_file": "link.seed"})
    assert shared_secret(settings, context(data_dir=tmp_path), LINK) == bytes(range(32))
    with pytest.raises(ConfigError, match=r"^seed_file: cannot read .*missing\.seed"):
        build({**FAST, "seed_file": "missing.seed"}, data_dir=tmp_path)
    (tmp_path / "short.seed").write_bytes(b"tiny")
    with pytest.raises(ConfigError, match=r"^seed_file: must hold at least 16 bytes"):
        build({**FAST, "seed_file": "short.seed"}, data_dir=tmp_path)


def test_a_peer_is_required() -> None:
    with pytest.raises(ConfigError, match="no peer KME"):
        SimulatedQkdSource.from_config(dict(FAST), SourceContext("KME-A"))


def test_registry_builds_the_source_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(source_registry.BUILTIN_SOURCES, "simulated", SimulatedQkdSource)
    source = source_registry.build_source("simulated", dict(FAST), context())
    assert isinstance(source, SimulatedQkdSource) and not source.on_demand
    assert source.provenance.sources == ("qkd-sim",)
    assert source.provenance.route == ("KME-A", "KME-B")


# --- both ends, determinism -------------------------------------------------------------------


def test_both_ends_get_identical_blocks(two_ends) -> None:
    alice, bob = two_ends
    assert sum(block is not None for block in alice) >= 2, "the fast config should yield keys"
    assert [b and (b.block_id, b.sequence) for b in alice] == [b and (b.block_id, b.sequence) for b in bob]
    assert [digest(b) for b in alice] == [digest(b) for b in bob]
    assert [b.block_id for b in alice if b] == [f"{LINK}:{k}" for k, b in zip(FRAMES, alice) if b]


def test_block_is_the_engine_key_of_this_end(two_ends) -> None:
    block = next(b for b in two_ends[0] if b is not None)
    settings = parse_settings(FAST)
    seed = frame_seed(shared_secret(settings, context(), LINK), LINK, block.sequence)
    run = run_link(settings.link_params(), settings.pulses_per_frame, seed)
    assert block.size_bits == run.stats.secret_bits > 0
    assert digest(block) == hashlib.sha256(run.alice_key).hexdigest()


def test_a_fresh_instance_reproduces_a_frame(two_ends) -> None:
    index, original = next((k, b) for k, b in zip(FRAMES, two_ends[1]) if b is not None)
    again = build(kme="KME-B", peer="KME-A").run_frame(index)
    same = (again.block_id, again.sequence, digest(again))
    assert same == (original.block_id, original.sequence, digest(original))


def test_other_link_or_seed_file_gives_other_keys(two_ends, tmp_path: Path) -> None:
    index, original = next((k, b) for k, b in zip(FRAMES, two_ends[0]) if b is not None)
    other_link = build(kme="KME-A", peer="KME-C", link_id="KME-A--KME-C").run_frame(index)
    (tmp_path / "link.seed").write_bytes(b"a secret shared by both ends of the link")
    seeded = build({**FAST, "seed_file": "link.seed"}, data_dir=tmp_path).run_frame(index)
    digests = {digest(original), digest(other_link), digest(seeded)}
    assert None not in digests and len(digests) == 3
    assert other_link.block_id == f"KME-A--KME-C:{index}"


# --- eavesdroppers and health ------------------------------------------------------------------


@pytest.mark.parametrize("eve, words", [
    ({"kind": "intercept-resend", "fraction": 1.0}, ["QBER", "above abort threshold", "eavesdropper"]),
    ({"kind": "pns", "fraction": 1.0}, ["photon-number-splitting"]),
])
def test_full_attack_yields_no_blocks_and_takes_the_link_down(eve: dict, words: list[str]) -> None:
    source = build({**FAST, "eve": eve})
    assert source.run_frame(1) is None
    health = source.health()
    assert health.state == "degraded" and all(word in health.reason for word in words), health.reason
    assert [source.run_frame(k) for k in (2, 3)] == [None, None]
    health = source.health()
    assert health.state == "down" and all(word in health.reason for word in words), health.reason
    assert health.metrics["frames_aborted"] == 3 and health.metrics["frames_ok"] == 0
    assert source.fetch(1 << 30) == [] and all(word in source.last_abort_reason for word in words)


def test_qber_jump_raises_the_alarm_and_clears_without_eve() -> None:
    source = build()
    for k in (1, 2):
        source.run_frame(k)
    health = source.health()
    assert health.state == "up", health.reason
    assert health.metrics["qber"] < 0.03 and health.metrics["secret_rate_bps"] > 0
    for name in ("secret_bits_per_pulse", "sifted_bits", "y1_lower", "e1_upper", "frames_ok",
                 "frames_aborted", "speedup"):
        assert isinstance(health.metrics[name], (int, float)), name
    source.set_eve(EveSpec("intercept-resend", 0.2))
    source.run_frame(3)
    health = source.health()
    assert health.state == "degraded"
    assert "QBER rose from" in health.reason and "possible eavesdropper" in health.reason, health.reason
    source.set_eve(None)
    source.run_frame(4)
    assert source.health().state == "up", source.health().reason


# --- queue and worker, on a stand-in engine ------------------------------------------------------


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_link stand-in: instant, deterministic per seed, 1-4 KiB keys, real-looking stats."""
    real = run_link(parse_settings(FAST).link_params(), 1, seed=0).stats

    def fake_run_link(params, pulses, seed, eve=None, progress=None) -> LinkRun:
        size = 1024 * (1 + seed % 4)
        key = hashlib.shake_256(seed.to_bytes(32, "big")).digest(size)
        stats = dataclasses.replace(real, qber=0.01, pe_sample_bits=100, secret_bits=8 * size,
                                    aborted=False, abort_reason=None)
        return LinkRun(stats, key, key)

    monkeypatch.setattr(source_module, "run_link", fake_run_link)


def test_fetch_hands_out_whole_blocks_within_the_bound(fake_engine) -> None:
    source = build()
    blocks = [source.run_frame(k) for k in (1, 2, 3)]
    first, second, third = (b.size_bits for b in blocks)
    assert source.fetch(0) == [] and source.fetch(first - 8) == []
    assert [b.sequence for b in source.fetch(first + second - 8)] == [1]
    fetched = source.fetch(second + third)
    assert [b.sequence for b in fetched] == [2, 3]
    assert source.fetch(1 << 30) == []


def test_queue_is_bounded_and_drops_oldest_with_a_log_line(fake_engine, caplog) -> None:
    source = build({**FAST, "max_queued_blocks": 2})
    with caplog.at_level(logging.WARNING, logger="qkms.sources.simulated"):
        for k in (1, 2, 3, 4):
            source.run_frame(k)
    assert [b.sequence for b in source.fetch(1 << 30)] == [3, 4]
    dropped = [r.getMessage() for r in caplog.records if "dropped oldest block" in r.getMessage()]
    assert len(dropped) == 2 and f"{LINK}:1" in dropped[0]
    assert source.health().metrics["blocks_dropped"] == 2


def start_worker(source: SimulatedQkdSource) -> threading.Thread:
    """Start the source and return its worker thread."""
    before = set(threading.enumerate())
    source.start()
    (worker,) = set(threading.enumerate()) - before
    return worker


def test_worker_runs_the_coming_slots_and_stops(fake_engine) -> None:
    # Slots of 0.5 s: the worker skips frames only when more than 3 slots (1.5 s) behind.
    source = build({**FAST, "frame_interval_s": 0.5})
    started_slot = source.current_slot()
    blocks: list[KeyBlock] = []

    def two_blocks() -> bool:
        blocks.extend(source.fetch(1 << 30))
        return len(blocks) >= 2

    worker = start_worker(source)
    try:
        wait_until(two_blocks, "two frames from the worker", 60)
    finally:
        source.stop()
    source.stop()
    assert not worker.is_alive(), "the worker outlived stop()"
    sequences = [b.sequence for b in blocks]
    assert len(sequences) >= 2 and sequences[0] > started_slot
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


def test_stop_wakes_a_worker_waiting_for_its_slot() -> None:
    source = build({**FAST, "frame_interval_s": 3600})
    worker = start_worker(source)
    source.stop()
    assert not worker.is_alive(), "stop() left the worker waiting for its next slot"


def test_stop_cancels_a_long_frame_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    # A frame of 4e8 pulses takes about a minute; it reports progress every 2**20 pulses.
    frame_started = threading.Event()

    def run_link_noting_the_start(*args, **kwargs) -> LinkRun:
        frame_started.set()
        return run_link(*args, **kwargs)

    monkeypatch.setattr(source_module, "run_link", run_link_noting_the_start)
    source = build({"pulses_per_frame": 400_000_000, "frame_interval_s": 0.05})
    worker = start_worker(source)
    wait_until(frame_started.is_set, "the worker to start a frame", 60)
    source.stop()
    assert not worker.is_alive(), "stop() did not cancel the frame in progress"
    assert source.health().metrics["frames_ok"] == 0


def test_stop_without_start_is_idempotent() -> None:
    source = build()
    source.stop()
    source.stop()
    assert source.health().state == "down"


def test_an_eve_file_switches_an_eavesdropper_on_and_off(tmp_path) -> None:
    """The file is read at every frame: while it names a full intercept-resend attack the
    frames abort on their QBER; without it they deliver again."""
    eve_file = tmp_path / "eve.json"
    source = SimulatedQkdSource.from_config(
        {"preset": "snspd-illustrative", "pulses_per_frame": 3_000_000, "eve_file": "eve.json"},
        SourceContext("KME-A", "KME-B", "A-B", str(tmp_path)))
    assert source.run_frame(1) is not None
    eve_file.write_text('{"kind": "intercept-resend", "fraction": 1.0}')
    assert source.run_frame(2) is None and "QBER" in source.last_abort_reason
    eve_file.unlink()
    assert source.run_frame(3) is not None


def test_an_eve_file_is_read_strictly(tmp_path) -> None:
    eve_file = tmp_path / "eve.json"
    assert read_eve_file(eve_file) is None
    eve_file.write_text('{"kind": "pns", "fraction": 0.5}')
    assert read_eve_file(eve_file) == EveSpec("pns", 0.5)
    eve_file.write_text('{"kind": "teleport"}')
    with pytest.raises(ValueError, match="unknown attack 'teleport'"):
        read_eve_file(eve_file)
