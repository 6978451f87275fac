"""The KeySource contract (kms/sources.py), run against every source the registry knows
(built-ins and ``qkms.key_sources`` entry points) that can be built for a test.

A source that needs settings gets them from CONTRACT_CONFIGS (its kind -> a config
section usable on loopback, without hardware); a source that cannot be built from its
entry there (or from an empty section) is skipped with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kms.csprng_source import CsprngSource
from kms.errors import ConfigError
from kms.keys import KeyBlock, Provenance
from kms.source_registry import (BUILTIN_SOURCES, available_sources, build_source, known_kinds, require_known_kind,
                                 source_class, validate_source)
from kms.sources import KeySource, SourceContext, SourceHealth

#: kind -> the config section that builds the source for these tests.
CONTRACT_CONFIGS: dict[str, dict[str, Any]] = {
    # Efficient detectors and small frames: a block (~30 kbit) about every second.
    "simulated": {"preset": "snspd-illustrative", "length_km": 10, "pulses_per_frame": 3_000_000,
                  "frame_interval_s": 1.0},
}

#: How long a source that produces over time (on_demand False) may take to yield bits.
FIRST_BITS_TIMEOUT_S = 5.0
HEALTH_STATES = {"up", "degraded", "down"}


def context_for(tmp_path: Path) -> SourceContext:
    return SourceContext(kme_id="KME-A", peer_kme_id="KME-B", link_id="KME-A--KME-B", data_dir=str(tmp_path))


@pytest.fixture(params=sorted(available_sources()))
def kind(request) -> str:
    return request.param


@pytest.fixture
def source(kind: str, tmp_path: Path) -> Iterator[KeySource]:
    section = CONTRACT_CONFIGS.get(kind, {})
    try:
        built = build_source(kind, dict(section), context_for(tmp_path))
    except ConfigError as exc:
        if kind in CONTRACT_CONFIGS:
            raise
        pytest.skip(f"source {kind!r} needs settings ({exc.message}); add it to CONTRACT_CONFIGS")
    built.start()
    yield built
    built.stop()


def fetch_some(source: KeySource, max_bits: int) -> list[KeyBlock]:
    """Blocks from one fetch, waiting for a source that produces over time."""
    deadline = time.monotonic() + (0 if source.on_demand else FIRST_BITS_TIMEOUT_S)
    while True:
        blocks = source.fetch(max_bits)
        if blocks or time.monotonic() >= deadline:
            return blocks
        time.sleep(0.05)


# --- what every source promises -------------------------------------------------------------


def test_source_declares_its_kind_and_mode(kind: str, source: KeySource) -> None:
    assert type(source).kind == kind
    assert isinstance(type(source).on_demand, bool)


@pytest.mark.parametrize("max_bits", [8, 64, 256, 1001, 8192, 65536])
def test_fetch_respects_the_bound_in_whole_bytes(source: KeySource, max_bits: int) -> None:
    blocks = fetch_some(source, max_bits)
    assert all(isinstance(block, KeyBlock) for block in blocks)
    assert all(isinstance(block.material, bytes) and block.material for block in blocks)
    assert all(block.size_bits == 8 * len(block.material) for block in blocks)
    assert sum(block.size_bits for block in blocks) <= max_bits
    if source.on_demand:
        assert blocks, "an on-demand source yields bits when asked"


@pytest.mark.parametrize("max_bits", [0, 1, 7, -8])
def test_fetch_below_one_byte_yields_nothing(source: KeySource, max_bits: int) -> None:
    assert sum(len(block.material) for block in source.fetch(max_bits)) == 0


def test_block_ids_are_unique(source: KeySource) -> None:
    blocks = [block for _ in range(200) for block in source.fetch(256)]
    if not source.on_demand:
        blocks += fetch_some(source, 1 << 24)
    ids = [block.block_id for block in blocks]
    assert ids and all(isinstance(block_id, str) and block_id for block_id in ids)
    assert len(set(ids)) == len(ids)


def test_blocks_are_not_handed_out_twice(source: KeySource) -> None:
    materials = [block.material for _ in range(200) for block in source.fetch(256) if len(block.material) >= 8]
    repeated = len(materials) - len(set(materials))
    assert repeated == 0


def test_block_repr_hides_the_material(source: KeySource) -> None:
    for block in fetch_some(source, 256):
        shown = repr(block)
        leaks = block.material.hex() in shown or repr(block.material) in shown
        assert not leaks, f"repr of block {block.block_id} shows its material"


def test_health_is_one_of_the_known_states(source: KeySource) -> None:
    health = source.health()
    assert isinstance(health, SourceHealth)
    assert health.state in HEALTH_STATES
    assert isinstance(health.reason, str)
    assert all(isinstance(name, str) and isinstance(value, (int, float)) for name, value in health.metrics.items())


def test_provenance_is_not_empty(source: KeySource) -> None:
    provenance = source.provenance
    assert isinstance(provenance, Provenance)
    assert provenance.sources and all(provenance.sources)
    assert Provenance.from_json(provenance.to_json()) == provenance


def test_stop_is_idempotent(source: KeySource) -> None:
    source.stop()
    source.stop()
    assert source.health().state in HEALTH_STATES


def test_stop_without_start_is_harmless(kind: str, tmp_path: Path) -> None:
    try:
        built = build_source(kind, dict(CONTRACT_CONFIGS.get(kind, {})), context_for(tmp_path))
    except ConfigError:
        pytest.skip(f"source {kind!r} needs settings; add it to CONTRACT_CONFIGS")
    built.stop()
    built.stop()


def test_unknown_setting_is_rejected_by_name(kind: str, tmp_path: Path) -> None:
    section = {**CONTRACT_CONFIGS.get(kind, {}), "no_such_setting": 1}
    with pytest.raises(ConfigError, match="no_such_setting"):
        build_source(kind, section, context_for(tmp_path))
    with pytest.raises(ConfigError, match="no_such_setting"):
        validate_source(kind, section, context_for(tmp_path))


def test_validating_starts_nothing(kind: str, tmp_path: Path) -> None:
    """``qkms serve`` validates every link source before it starts any process."""
    threads = set(threading.enumerate())
    try:
        validate_source(kind, dict(CONTRACT_CONFIGS.get(kind, {})), context_for(tmp_path))
    except ConfigError:
        pytest.skip(f"source {kind!r} needs settings; add it to CONTRACT_CONFIGS")
    assert set(threading.enumerate()) == threads


# --- the registry --------------------------------------------------------------------------


def test_builtins_are_available() -> None:
    sources = available_sources()
    assert BUILTIN_SOURCES.items() <= sources.items()
    assert sources["csprng"] is CsprngSource
    assert all(isinstance(cls, type) and issubclass(cls, KeySource) for cls in sources.values())


def test_unknown_kind_is_a_config_error_listing_the_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_source("qkd-teleporter", {}, context_for(tmp_path))
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


# --- csprng specifics --------------------------------------------------------------------------


def test_csprng_rejects_unknown_settings_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_source("csprng", {"rate_bps": 1000, "entropy": "hw"}, context_for(tmp_path))
    assert caught.value.message == "entropy, rate_bps: unknown setting for the csprng source"


def test_csprng_fills_the_whole_request_in_whole_bytes(tmp_path: Path) -> None:
    source = build_source("csprng", {}, context_for(tmp_path))
    assert sum(block.size_bits for block in source.fetch(1001)) == 1000
    assert sum(block.size_bits for block in source.fetch(4096)) == 4096


def test_csprng_provenance_names_the_node(tmp_path: Path) -> None:
    provenance = build_source("csprng", {}, context_for(tmp_path)).provenance
    assert provenance.sources == ("csprng",) and provenance.route == ("KME-A",)
