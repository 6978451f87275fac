"""The ETSI 014 pull protocol between the two ends of a link, in one process: both ends'
sources, two mock devices (their real apps over WSGI), a direct KM channel, a stepped
clock. Every fault a device can show without a network (the process-level ones, down
and slow, are in tests/integration/test_devices.py) is detected with its reason, and no
wrong or reused block reaches either end's pool."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from adapters.devices.pull_source import block_id
from tests.support.device_harness import DeviceLink, build_device_link, digest

#: keys_per_block 8 x 256 bits: blocks of 2048 bits (7 of them the check's pad).
SETTINGS = {"keys_per_block": 8, "keys_per_request": 4, "breaker_failures": 3, "breaker_cooldown_s": 20,
            "health_window_s": 10, "backoff_initial_s": 0.5, "backoff_max_s": 4}


@pytest.fixture
def link(tmp_path: Path) -> DeviceLink:
    link = build_device_link(tmp_path, **SETTINGS)
    link.feed(4)
    return link


def deliver(link: DeviceLink, blocks: int = 1) -> tuple[list, list]:
    for _ in range(blocks):
        assert link.master.step()
    return link.fetch_both()


def test_both_ends_get_the_same_blocks(link: DeviceLink) -> None:
    a, b = deliver(link, 3)
    assert [(x.block_id, x.sequence) for x in a] == [(x.block_id, x.sequence) for x in b] and len(a) == 3
    assert [digest(x) for x in a] == [digest(x) for x in b]
    assert all(x.size_bits == 8 * 256 - 56 for x in a)
    assert [x.sequence % 2 for x in a] in ([0, 1, 0], [1, 0, 1]), "two empty halves fill alike"
    assert all(x.sequence < y.sequence for x, y in zip(a, a[1:]))


def test_the_block_id_comes_from_the_device_key_ids() -> None:
    ids = [str(uuid.UUID(int=i)) for i in (1, 2)]
    assert block_id("A-B", ids) == block_id("A-B", [i.upper() for i in ids]) != block_id("A-B", ids[::-1])


def test_no_key_material_goes_over_the_channel(link: DeviceLink) -> None:
    a, _ = deliver(link, 2)
    transcript = "".join(link.channel.transcript)
    for block in a:
        for start in range(0, len(block.material) - 8, 8):
            assert block.material[start:start + 8].hex() not in transcript


def test_requests_stay_within_the_device_s_max_key_per_request(link: DeviceLink) -> None:
    deliver(link)
    assert link.transports["KME-A"].calls == [("GET", "status"), ("POST", "enc_keys"), ("POST", "enc_keys")]
    assert link.transports["KME-B"].calls == [("POST", "dec_keys"), ("POST", "dec_keys")]


def test_a_device_with_too_few_keys_is_not_asked(tmp_path: Path) -> None:
    link = build_device_link(tmp_path, **SETTINGS)
    assert not link.master.step()
    assert link.transports["KME-A"].calls == [("GET", "status")] and link.master.health().metrics["failures"] == 0


def test_the_pool_is_topped_up_to_the_target_and_no_further(link: DeviceLink) -> None:
    link.master.observe_pool({"KME-A": 5_000_000, "KME-B": 5_000_000})
    assert not link.master.step() and not link.master.step()
    assert link.transports["KME-A"].calls == [("GET", "status")], "a full pool: one probe, no keys"
    link.clock.advance(100)
    link.master.step()
    assert link.master.health().state == "up", "a full pool is no stall"
    link.master.observe_pool({"KME-A": 0, "KME-B": 5_000_000})
    assert link.master.step()


def test_each_block_goes_to_the_half_that_needs_it(link: DeviceLink) -> None:
    """The end that sends keys empties its half only: blocks go there (even sequences are
    KME-A's), and the idle half does not grow."""
    link.feed(4)
    link.master.observe_pool({"KME-A": 0, "KME-B": 5_000_000})
    a, b = deliver(link, 3)
    assert [x.sequence % 2 for x in a] == [0, 0, 0] and [x.sequence for x in a] == [x.sequence for x in b]
    link.master.observe_pool({"KME-A": 5_000_000, "KME-B": 1_000})
    (other,), _ = deliver(link, 1)
    assert other.sequence % 2 == 1


def test_a_key_size_the_device_does_not_offer_is_reported(tmp_path: Path) -> None:
    link = build_device_link(tmp_path, **{**SETTINGS, "key_size_bits": 16384})
    link.feed(2)
    link.master.step()
    assert "offers keys of 64 to 8192 bits, not key_size_bits 16384" in link.master.health().reason


#: fault at a device -> (the end whose health shows it, the reason's telling words).
FAULTS = {
    ("KME-A", "unavailable"): "the device answered 503 to status: device unavailable (mock fault)",
    ("KME-A", "throttle:rate_per_s=0"): "the device is throttling (status: 503",
    ("KME-A", "malformed-json"): "the device sent a malformed answer to status: the body is not JSON",
    ("KME-A", "wrong-length"): "the device sent a key of 248 bits, expected 256 (enc_keys)",
    ("KME-A", "unknown-key-id"): "slave end KME-B: the device does not hold key_IDs its peer device gave out",
    ("KME-A", "different-bytes"): "equality check failed: the two ends' devices delivered different bytes",
    ("KME-B", "different-bytes"): "equality check failed: the two ends' devices delivered different bytes",
    ("KME-B", "wrong-length"): "slave end KME-B: the device sent a key of 248 bits, expected 256 (dec_keys)",
    ("KME-B", "malformed-json"): "slave end KME-B: the device sent a malformed answer to dec_keys",
    ("KME-B", "unavailable"): "slave end KME-B: the device answered 503 to dec_keys",
    ("KME-B", "repeat-key"): "equality check failed",
}


@pytest.mark.parametrize("where, fault", list(FAULTS), ids=[f"{w}-{f}" for w, f in FAULTS])
def test_each_fault_is_detected_with_its_reason_and_nothing_wrong_is_delivered(link: DeviceLink, where: str,
                                                                              fault: str) -> None:
    good_a, good_b = deliver(link, 1)
    link.set_fault(where, fault)
    link.feed(2)
    link.master.step()
    health = link.master.health()
    assert health.state == "degraded" and FAULTS[(where, fault)] in health.reason
    assert link.fetch_both() == ([], []), "a block was delivered while the device misbehaved"
    link.clear_faults()
    link.clock.advance(10)
    a, b = deliver(link, 1)
    assert len(a) == len(b) == 1 and digest(a[0]) == digest(b[0]) != digest(good_a[0])
    link.clock.advance(11)
    assert link.master.health().state == "up"


def test_a_key_delivered_twice_by_the_master_s_device_is_refused(link: DeviceLink) -> None:
    deliver(link, 1)
    link.set_fault("KME-A", "repeat-key")
    link.master.step()
    assert "a second time (enc_keys)" in link.master.health().reason
    assert link.master.health().metrics["faults_repeated_key"] == 1
    assert link.fetch_both() == ([], [])


def test_repeated_failures_open_the_breaker_and_a_recovered_device_closes_it(link: DeviceLink) -> None:
    deliver(link, 1)
    link.set_fault("KME-A", "unavailable")
    for _ in range(SETTINGS["breaker_failures"]):
        link.master.step()
        link.clock.advance(link.master._health.wait_s())
    link.master.step()  # half-open: one probe, which fails
    health = link.master.health()
    assert health.state == "down" and "circuit open" in health.reason
    assert health.metrics["breaker_opened"] == 2  # opened, then again after the failed probe
    calls = len(link.transports["KME-A"].calls)
    assert not link.master.step() and len(link.transports["KME-A"].calls) == calls, "an open breaker calls nobody"
    link.clear_faults()
    link.clock.advance(SETTINGS["breaker_cooldown_s"])
    assert link.master.step()
    link.clock.advance(SETTINGS["health_window_s"] + 1)
    assert link.master.health().state == "up" and len(link.fetch_both()[0]) == 1


def test_keys_gathered_before_a_503_are_kept_for_the_next_block(link: DeviceLink) -> None:
    link.set_fault("KME-A", "throttle:rate_per_s=2")  # status and one enc_keys go through
    link.master.step()
    assert "throttling" in link.master.health().reason
    link.clear_faults()
    link.clock.advance(5)
    a, b = deliver(link, 1)
    assert len(a) == 1 and digest(a[0]) == digest(b[0])


def test_an_unreachable_slave_end_is_reported(link: DeviceLink) -> None:
    link.channel.broken = True
    link.master.step()
    assert "slave end KME-B did not answer" in link.master.health().reason


def test_the_slave_end_probes_its_device(link: DeviceLink) -> None:
    assert link.slave.step()
    assert link.slave.health().metrics["failures"] == 0 and len(link.transports["KME-B"].calls) == 1
    link.set_fault("KME-B", "unavailable")
    link.slave.step()
    assert len(link.transports["KME-B"].calls) == 1, "the next probe is not due yet"
    link.clock.advance(5)
    link.slave.step()
    assert "the device answered 503 to status" in link.slave.health().reason


def test_an_offer_to_the_master_end_is_refused(link: DeviceLink) -> None:
    from kms.errors import BadRequest

    with pytest.raises(BadRequest, match="master"):
        link.master.respond({"op": "block"})


def test_a_device_drained_between_status_and_enc_keys_is_alive_not_failing(tmp_path: Path) -> None:
    """Each half holds 640 bits: the status counts 5 keys of 256, but 4 keys cannot be
    carved from either half, so the device answers enc_keys with 503 (as one racing its
    own buffer would). Before the fix three such rounds opened the breaker."""
    link = build_device_link(tmp_path, **SETTINGS)
    link.feed(2, size_bytes=80)
    for _ in range(2 * SETTINGS["breaker_failures"]):
        assert not link.master.step()
        link.clock.advance(SETTINGS["backoff_max_s"])
    health = link.master.health()
    assert health.metrics["failures"] == 0 and health.metrics["faults_drained"] == 6 and health.metrics["breaker_open"] == 0
    assert health.state == "down" and "nothing delivered yet; the device has no keys to give" in health.reason
    assert link.transports["KME-A"].calls[:2] == [("GET", "status"), ("POST", "enc_keys")]
    link.feed(4)
    a, b = deliver(link, 1)
    assert len(a) == len(b) == 1 and link.master.health().state == "up"
