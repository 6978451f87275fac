"""kms.service.KeyService with a real KeyStore on the embedded Redis: request
validation changes nothing, dec_keys is all or none, the audit log names key_IDs and
never key material (DESIGN.md sections 2, 3, 7 and 8)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.config import NodeConfig, parse_config
from kms.csprng_source import CsprngSource
from kms.errors import BadRequest, ExtensionNotSupported, KeysNotFound, QuotaExceeded, Unauthorized, Unavailable
from kms.keys import Key, KeyBlock, KeyRequest
from kms.node import storage_limits
from kms.store import KeyStore
from tests.support.backends import Backend
from kms.service import KeyService
from kms.sources import SourceContext

KME = "KME-1"
MAX_PER_REQUEST = 16
MAX_ADDITIONAL = 2


class CountingSource(CsprngSource):
    """The node's CSPRNG, counting how often it was asked for bits."""

    def __init__(self, context: SourceContext):
        super().__init__(context)
        self.fetches = 0

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        self.fetches += 1
        return super().fetch(max_bits)


class StarvedSource(CountingSource):
    """A source that always has one byte less than asked for."""

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        return super().fetch(max_bits - 8)


def node_config(tmp_path: Path, **limits) -> NodeConfig:
    return parse_config({
        "kme_id": KME,
        "tls": {"cert": "node.crt", "key": "node.key", "ca": "ca.crt"},
        "saes": [{"id": f"sae-{n}"} for n in range(1, 6)],
        "kek": {"file": "kek.hex"},
        "limits": {"min_key_size_bits": 64, "key_size_bits": 256, "max_key_size_bits": 1024,
                   "max_keys_per_request": MAX_PER_REQUEST, "max_sae_id_count": MAX_ADDITIONAL, **limits},
        "reservation_ttl_s": 600,
    }, tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[KeyStore]:
    """The node's store on every backend (the in-memory twin in the unit tier)."""
    store = backend.open(KME).store
    yield store
    store.close()


@pytest.fixture
def source() -> CountingSource:
    return CountingSource(SourceContext(kme_id=KME))


@pytest.fixture
def service(tmp_path: Path, store: KeyStore, source: CountingSource) -> KeyService:
    return KeyService(node_config(tmp_path), store, source)


def request(number: int = 1, size_bits: int = 256, additional: tuple[str, ...] = (), **extra) -> KeyRequest:
    return KeyRequest(number, size_bits, additional, **extra)


# --- enc_keys ------------------------------------------------------------------------------


def test_enc_keys_then_dec_keys_hands_the_slave_the_same_keys(service: KeyService, store) -> None:
    keys = service.enc_keys("sae-1", "sae-2", request(number=3, size_bits=512))
    assert [k.size_bits for k in keys] == [512] * 3
    assert len({k.key_id for k in keys}) == 3
    assert all(uuid.UUID(k.key_id).version == 4 for k in keys)
    assert all(k.provenance.sources == ("csprng",) for k in keys)
    distinct_materials = len({k.material for k in keys})
    assert distinct_materials == 3
    assert store.pending_count() == 3
    fetched = service.dec_keys("sae-2", "sae-1", [k.key_id for k in reversed(keys)])
    assert [k.key_id for k in fetched] == [k.key_id for k in reversed(keys)]
    assert all(a.material == b.material for a, b in zip(fetched, reversed(keys))), "material differs"
    assert store.pending_count() == 0


def test_additional_slaves_each_get_the_key_once(service: KeyService, store) -> None:
    (key,) = service.enc_keys("sae-1", "sae-2", request(additional=("sae-3", "sae-4")))
    for slave in ("sae-4", "sae-2", "sae-3"):
        same = service.dec_keys(slave, "sae-1", [key.key_id])[0].material == key.material
        assert same, f"{slave} got other material"
    assert store.pending_count() == 0


def test_bounds_are_inclusive(service: KeyService, store) -> None:
    assert [k.size_bits for k in service.enc_keys("sae-1", "sae-2", request(size_bits=64))] == [64]
    assert [k.size_bits for k in service.enc_keys("sae-1", "sae-2", request(size_bits=1024))] == [1024]
    assert len(service.enc_keys("sae-1", "sae-2", request(number=MAX_PER_REQUEST))) == MAX_PER_REQUEST
    (key,) = service.enc_keys("sae-1", "sae-2", request(additional=("sae-3", "sae-4")))
    assert [len(service.dec_keys(slave, "sae-1", [key.key_id])) for slave in ("sae-2", "sae-3", "sae-4")] == [1] * 3
    assert store.pending_count() == 2 + MAX_PER_REQUEST


def test_extension_optional_is_ignored(service: KeyService) -> None:
    assert service.enc_keys("sae-1", "sae-2", request(extension_optional=({"abc_route_type": "direct"},)))


REJECTED = [
    pytest.param("sae-2", request(size_bits=260), BadRequest, "size shall be a multiple of 8", [], id="size-not-bytes"),
    pytest.param("sae-2", request(size_bits=63), BadRequest, "size shall be a multiple of 8", [], id="size-63"),
    pytest.param("sae-2", request(size_bits=56), BadRequest, "size must be between 64 and 1024 bits", [],
                 id="size-too-small"),
    pytest.param("sae-2", request(size_bits=1032), BadRequest, "size must be between 64 and 1024 bits", [],
                 id="size-too-large"),
    pytest.param("sae-2", request(size_bits=0), BadRequest, "size must be between 64 and 1024 bits", [],
                 id="size-0"),
    pytest.param("sae-2", request(number=0), BadRequest, f"number must be between 1 and {MAX_PER_REQUEST}", [],
                 id="number-0"),
    pytest.param("sae-2", request(number=MAX_PER_REQUEST + 1), BadRequest,
                 f"number must be between 1 and {MAX_PER_REQUEST}", [], id="number-too-many"),
    pytest.param("sae-2", request(additional=("sae-3", "sae-4", "sae-5")), BadRequest,
                 f"at most {MAX_ADDITIONAL} additional_slave_SAE_IDs", [], id="too-many-slaves"),
    pytest.param("sae-2", request(additional=("sae-3", "sae-3")), BadRequest,
                 "additional_slave_SAE_IDs must not repeat a slave", [], id="repeated-slave"),
    pytest.param("sae-2", request(additional=("sae-2",)), BadRequest,
                 "additional_slave_SAE_IDs must not repeat a slave", [], id="slave-as-additional"),
    pytest.param("sae-1", request(), BadRequest, "slave_SAE_ID must differ from the master SAE", [],
                 id="slave-is-master"),
    pytest.param("sae-2", request(additional=("sae-1",)), BadRequest,
                 "slave_SAE_ID must differ from the master SAE", [], id="master-as-additional"),
    pytest.param("sae-9", request(), BadRequest, "unknown slave_SAE_ID", [{"slave_SAE_ID": "sae-9"}],
                 id="unknown-slave"),
    pytest.param("sae-2", request(additional=("sae-3", "nobody")), BadRequest, "unknown slave_SAE_ID",
                 [{"slave_SAE_ID": "nobody"}], id="unknown-additional-slave"),
    pytest.param("sae-2", request(extension_mandatory=({"route_type": "direct"}, {"abc_qos": 1, "abc_x": 2})),
                 ExtensionNotSupported, "not all extension_mandatory parameters are supported",
                 [{"extension_mandatory": ["abc_qos", "abc_x", "route_type"]}], id="extension-mandatory"),
]


@pytest.mark.parametrize(("slave", "req", "error", "message", "details"), REJECTED)
def test_rejected_enc_keys_stores_nothing(service: KeyService, store: KeyStore, source: CountingSource,
                                          caplog, slave, req, error, message, details) -> None:
    caplog.set_level(logging.INFO, logger="qkms.audit")
    reserved_before = store.pending_count()
    with pytest.raises(error) as caught:
        service.enc_keys("sae-1", slave, req)
    assert type(caught.value) is error
    assert caught.value.message == message
    assert caught.value.details == details
    assert store.pending_count() == reserved_before == 0
    assert source.fetches == 0, "bits were drawn for a rejected request"
    assert not [r for r in caplog.records if r.name == "qkms.audit"]


def test_extension_mandatory_is_checked_before_the_size(service: KeyService) -> None:
    with pytest.raises(ExtensionNotSupported):
        service.enc_keys("sae-1", "sae-2", request(size_bits=7, extension_mandatory=({"x": 1},)))


def test_a_source_short_of_bits_is_unavailable_and_stores_nothing(tmp_path: Path, store: KeyStore) -> None:
    service = KeyService(node_config(tmp_path), store, StarvedSource(SourceContext(kme_id=KME)))
    with pytest.raises(Unavailable):
        service.enc_keys("sae-1", "sae-2", request(number=4))
    assert store.pending_count() == 0


# --- dec_keys ------------------------------------------------------------------------------


@pytest.fixture
def reserved(service: KeyService) -> list[Key]:
    return service.enc_keys("sae-1", "sae-2", request(number=3))


def test_dec_keys_with_an_unknown_key_id_hands_out_none(service: KeyService, store, reserved) -> None:
    ids = [k.key_id for k in reserved]
    unknown = str(uuid.uuid4())
    with pytest.raises(KeysNotFound) as caught:
        service.dec_keys("sae-2", "sae-1", [ids[0], ids[1], unknown])
    assert caught.value.details == [{"key_ID": unknown}]
    assert store.pending_count() == 3
    assert len(service.dec_keys("sae-2", "sae-1", ids)) == 3


def test_dec_keys_by_another_sae_hands_out_none(service: KeyService, store, reserved) -> None:
    ids = [k.key_id for k in reserved]
    for caller in ("sae-3", "sae-1"):
        with pytest.raises(Unauthorized):
            service.dec_keys(caller, "sae-1", ids)
    assert store.pending_count() == 3
    assert len(service.dec_keys("sae-2", "sae-1", ids)) == 3


def test_dec_keys_naming_another_master_hands_out_none(service: KeyService, store, reserved) -> None:
    ids = [k.key_id for k in reserved]
    with pytest.raises(KeysNotFound):
        service.dec_keys("sae-2", "sae-3", ids)
    assert store.pending_count() == 3


def test_a_key_is_handed_out_once(service: KeyService, reserved) -> None:
    ids = [reserved[0].key_id]
    service.dec_keys("sae-2", "sae-1", ids)
    with pytest.raises(KeysNotFound):
        service.dec_keys("sae-2", "sae-1", ids)


@pytest.mark.parametrize(("key_ids", "message", "details"), [
    ([], "key_IDs must list at least one key_ID", []),
    (["same", "same"], "key_IDs must not repeat a key_ID", []),
    ([str(n) for n in range(MAX_PER_REQUEST + 1)], f"at most {MAX_PER_REQUEST} key_IDs per request", []),
])
def test_malformed_dec_keys_is_a_bad_request(service: KeyService, store, reserved, key_ids, message, details) -> None:
    with pytest.raises(BadRequest) as caught:
        service.dec_keys("sae-2", "sae-1", key_ids)
    assert (caught.value.message, caught.value.details) == (message, details)
    assert store.pending_count() == 3


def test_dec_keys_repeating_a_reserved_key_id_consumes_nothing(service: KeyService, store, reserved) -> None:
    key_id = reserved[0].key_id
    with pytest.raises(BadRequest):
        service.dec_keys("sae-2", "sae-1", [key_id, key_id])
    assert store.pending_count() == 3


def test_dec_keys_with_an_unknown_master_is_a_bad_request(service: KeyService, store, reserved) -> None:
    with pytest.raises(BadRequest) as caught:
        service.dec_keys("sae-2", "sae-9", [reserved[0].key_id])
    assert type(caught.value) is BadRequest
    assert caught.value.details == [{"master_SAE_ID": "sae-9"}]
    assert store.pending_count() == 3


# --- status and identities --------------------------------------------------------------------


def test_status_reports_the_limits(service: KeyService) -> None:
    status = service.status("sae-1", "sae-2")
    assert (status.source_kme_id, status.target_kme_id) == (KME, KME)
    assert (status.key_size_bits, status.min_key_size_bits, status.max_key_size_bits) == (256, 64, 1024)
    assert (status.max_keys_per_request, status.max_sae_id_count) == (MAX_PER_REQUEST, MAX_ADDITIONAL)
    assert status.extension["qkms_source"] == {"kind": "csprng", "state": "up"}


@pytest.mark.parametrize(("slave", "message"), [("sae-9", "unknown slave_SAE_ID"),
                                                 ("sae-1", "slave_SAE_ID must differ from the master SAE")])
def test_status_rejects_a_bad_slave(service: KeyService, slave: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        service.status("sae-1", slave)


def test_sae_for_identity(service: KeyService) -> None:
    assert service.sae_for_identity("sae-3") == "sae-3"
    assert service.sae_for_identity("sae-9") is None
    assert service.sae_for_identity(None) is None


# --- the audit log ---------------------------------------------------------------------------


def material_forms(keys: list[Key]) -> list[str]:
    forms = []
    for key in keys:
        forms += [base64.b64encode(key.material).decode(), base64.urlsafe_b64encode(key.material).decode(),
                  key.material.hex(), key.material.hex().upper(), repr(key.material)[2:-1]]
    return forms


def audit_entries(caplog) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "qkms.audit"]


def test_audit_log_names_key_ids_and_never_material(service: KeyService, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    keys = service.enc_keys("sae-1", "sae-2", request(number=4, additional=("sae-3",)))
    ids = [k.key_id for k in keys]
    fetched = service.dec_keys("sae-2", "sae-1", ids[:2])
    with pytest.raises(KeysNotFound):
        service.dec_keys("sae-3", "sae-1", [ids[0], str(uuid.uuid4())])
    enc, dec = audit_entries(caplog)
    assert {"event": "enc_keys", "sae": "sae-1", "key_IDs": ids, "slaves": ["sae-2", "sae-3"],
            "size_bits": 256}.items() <= enc.items()
    assert {"event": "dec_keys", "sae": "sae-2", "key_IDs": ids[:2], "master": "sae-1"}.items() <= dec.items()
    assert all(record.levelno == logging.INFO for record in caplog.records if record.name == "qkms.audit")
    leaked = [index for index, form in enumerate(material_forms(keys + fetched)) if form in caplog.text]
    assert leaked == [], "key material in the log"


def test_audit_is_silent_when_its_logger_is_off(service: KeyService, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="qkms.audit")
    service.enc_keys("sae-1", "sae-2", request())
    assert audit_entries(caplog) == []


# --- one SAE cannot starve the others ------------------------------------------------------


def test_a_master_at_its_quota_gets_503_while_another_master_is_served(tmp_path: Path, backend: Backend) -> None:
    """Issue 8: bursts of enc_keys by one SAE used to take every reservation of the node."""
    config = node_config(tmp_path, max_pending_keys_per_sae=3 * MAX_PER_REQUEST, max_key_count=10 * MAX_PER_REQUEST)
    store = backend.open(KME, limits=storage_limits(config)).store
    service = KeyService(config, store, CountingSource(SourceContext(kme_id=KME)))
    for _ in range(3):
        service.enc_keys("sae-1", "sae-2", request(number=MAX_PER_REQUEST))
    with pytest.raises(QuotaExceeded):
        service.enc_keys("sae-1", "sae-2", request(number=1))
    assert store.pending_count() == 3 * MAX_PER_REQUEST
    assert service.status("sae-1", "sae-2").stored_key_count == 0
    assert service.status("sae-3", "sae-2").stored_key_count == 3 * MAX_PER_REQUEST
    keys = service.enc_keys("sae-3", "sae-2", request(number=MAX_PER_REQUEST))
    assert len(keys) == MAX_PER_REQUEST
    service.dec_keys("sae-2", "sae-3", [k.key_id for k in keys])
    assert service.status("sae-3", "sae-2").stored_key_count == 3 * MAX_PER_REQUEST
