"""The mock device's own workings in one process: faults, key management across the pair
(the node's pools and store underneath), and its config file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from adapters.devices.mock.config import load_mock_config
from adapters.devices.mock.faults import FaultSet, parse_fault
from kms.errors import BadRequest, ConfigError, KeysNotFound, Unauthorized, Unavailable
from kms.keys import KeyRequest
from kms.pki import CertificateAuthority, PkiError
from tests.support.device_harness import SAES, DeviceLink, build_device_link

A, B = "KME-A", "KME-B"


@pytest.fixture
def link(tmp_path: Path) -> DeviceLink:
    return build_device_link(tmp_path)


def request(number: int = 1, size_bits: int = 256, extra: tuple[str, ...] = ()) -> KeyRequest:
    return KeyRequest(number, size_bits, extra)


def test_a_fault_spec_takes_parameters() -> None:
    assert parse_fault("slow").params == {"delay_s": 4.0}
    assert str(parse_fault("throttle:rate_per_s=5")) == "throttle:rate_per_s=5,retry_after_s=1"
    for bad in ("nap", "slow:speed=2", "slow:delay_s=soon"):
        with pytest.raises(BadRequest):
            parse_fault(bad)


def test_the_throttle_admits_its_rate_per_second() -> None:
    faults = FaultSet([parse_fault("throttle:rate_per_s=2,retry_after_s=3")])
    assert [faults.throttled() for _ in range(4)] == [None, None, 3.0, 3.0]
    faults.clear("throttle")
    assert faults.throttled() is None and faults.active() == []


def test_keys_carved_at_one_device_are_fetched_once_at_the_other(link: DeviceLink) -> None:
    link.feed(2)
    keys = link.kmes[A].enc_keys(SAES[A], SAES[B], request(3, 512))
    fetched = link.kmes[B].dec_keys(SAES[B], SAES[A], [k.key_id for k in keys])
    assert [k.material for k in fetched] == [k.material for k in keys] and all(len(k.material) == 64 for k in keys)
    with pytest.raises(KeysNotFound):
        link.kmes[B].dec_keys(SAES[B], SAES[A], [keys[0].key_id])


def test_each_device_carves_from_its_own_half_first(link: DeviceLink) -> None:
    link.feed(2)
    from_a = link.kmes[A].enc_keys(SAES[A], SAES[B], request())
    from_b = link.kmes[B].enc_keys(SAES[B], SAES[A], request())
    assert from_a[0].material != from_b[0].material
    assert link.kmes[A].dec_keys(SAES[A], SAES[B], [from_b[0].key_id])[0].material == from_b[0].material


def test_one_direction_gets_all_the_link_s_keys(link: DeviceLink) -> None:
    """Both halves serve a device whose peer takes none: 2 blocks of 4096 bytes, 256 keys."""
    link.feed(2)
    assert link.kmes[A].status(SAES[A], SAES[B]).stored_key_count == 256
    keys = [key for _ in range(2) for key in link.kmes[A].enc_keys(SAES[A], SAES[B], request(128))]
    for start in (0, 128):
        batch = keys[start:start + 128]
        assert [k.material for k in link.kmes[B].dec_keys(SAES[B], SAES[A], [k.key_id for k in batch])] == \
            [k.material for k in batch]
    assert len({k.material for k in keys}) == 256 and link.kmes[A].stored_keys() == 0


def test_a_caller_that_is_not_the_slave_gets_401_and_the_wrong_master_finds_nothing(tmp_path: Path) -> None:
    link = build_device_link(tmp_path)
    link.feed(1)
    (key,) = link.kmes[A].enc_keys(SAES[A], SAES[B], request())
    with pytest.raises(Unauthorized):
        link.kmes[B].dec_keys("someone", SAES[A], [key.key_id])
    with pytest.raises(KeysNotFound):
        link.kmes[B].dec_keys(SAES[B], "someone", [key.key_id])


@pytest.mark.parametrize("req, message", [
    (request(size_bits=100), "size shall be a multiple of 8"),
    (request(size_bits=16), "size must be between 64 and 8192 bits"),
    (request(number=129), "number must be between 1 and 128"),
    (request(extra=("CONSB",)), "at most 0 additional_slave_SAE_IDs"),
])
def test_bad_requests_are_refused_like_a_node_refuses_them(link: DeviceLink, req: KeyRequest, message: str) -> None:
    link.feed(1)
    with pytest.raises(BadRequest, match=message):
        link.kmes[A].enc_keys(SAES[A], SAES[B], req)
    with pytest.raises(BadRequest, match="unknown slave_SAE_ID"):
        link.kmes[A].status(SAES[A], "nobody")


def test_no_keys_is_a_503(link: DeviceLink) -> None:
    with pytest.raises(Unavailable):
        link.kmes[A].enc_keys(SAES[A], SAES[B], request())
    assert link.kmes[A].status(SAES[A], SAES[B]).stored_key_count == 0


def test_bits_the_peer_never_had_are_skipped(link: DeviceLink) -> None:
    """Device B started late: it lacks A's first block; A drops what B lacks and carves on."""
    link.feed(1)
    link.kmes[B]._storage.pools.discard_before("KME-A--KME-B", "qkd-a", 10**6, 0)
    link.feed(2)
    (key,) = link.kmes[A].enc_keys(SAES[A], SAES[B], request())
    assert link.kmes[B].dec_keys(SAES[B], SAES[A], [key.key_id])[0].material == key.material


def test_a_full_device_keeps_its_newest_keys(tmp_path: Path) -> None:
    link = build_device_link(tmp_path, limits={"max_key_count": 64})
    link.feed(40, size_bytes=512)
    kme = link.kmes[A]
    assert kme.status(SAES[A], SAES[B]).stored_key_count == 64
    (key,) = kme.enc_keys(SAES[A], SAES[B], request())
    assert link.kmes[B].dec_keys(SAES[B], SAES[A], [key.key_id])[0].material == key.material


def test_a_device_certificate_names_the_device(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    certificate = ca.issue_device_certificate("qkd-a.example").certificate
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["qkd-a.example", "localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    with pytest.raises(PkiError, match="DNS name"):
        ca.issue_device_certificate("qkd_a")


def test_a_bad_config_file_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "device.yaml"
    path.write_text("name: qkd-a\n")
    with pytest.raises(ConfigError, match="peer_name: Field required"):
        load_mock_config(path)
