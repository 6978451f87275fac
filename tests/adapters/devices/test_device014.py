"""Every way a call to an ETSI 014 device can go wrong becomes a DeviceFault with a
reason; well-formed but wrong answers are refused."""

from __future__ import annotations

import httpx
import pytest

from adapters.devices.device014 import DeviceStatus, HttpDevice014, checked_keys
from adapters.devices.errors import DeviceFault
from adapters.devices.settings import parse_settings
from adapters.etsi014_client import DeliveredKey
from kms.pki import CertificateAuthority
from kms.sources import SourceContext

KEY_ID = "9f78334b-c0a2-409c-930a-d97cdcbdd8cb"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("device014")
    ca = CertificateAuthority.create()
    ca.save(root / "ca.crt", root / "ca.key")
    ca.issue_sae_certificate("CONSA").save(root / "n.crt", root / "n.key")
    section = {"url": "https://qkd-a.example", "sae_id": "CONSA", "peer_sae_id": "CONSB", "cert": "n.crt",
               "key": "n.key", "ca": "ca.crt", "timeout_s": 2, "slow_answer_s": 0.5}
    return parse_settings(section, SourceContext("A", "B", "A-B", str(root)), "etsi014", "qkd-device",
                          "etsi014-generic")


def device(settings, handler, on_slow=lambda *_: None, clock=None) -> HttpDevice014:
    return HttpDevice014(settings, on_slow, transport=httpx.MockTransport(handler),
                         **({"clock": clock} if clock else {}))


def raising(exc: Exception):
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc
    return handler


@pytest.mark.parametrize("handler, kind, reason", [
    (raising(httpx.ReadTimeout("timed out")), "timeout", "the device did not answer status within 2 s"),
    (raising(httpx.ConnectError("[Errno 111] Connection refused")), "unreachable",
     "unreachable (status: [Errno 111] Connection refused)"),
    (lambda r: httpx.Response(401, json={"message": "who?"}), "unauthorized", "refused this node as its SAE"),
    (lambda r: httpx.Response(400, json={"message": "bad"}), "refused", "the device answered 400 to status: bad"),
    (lambda r: httpx.Response(503, json={"message": "later"}), "unavailable", "answered 503 to status: later"),
    (lambda r: httpx.Response(503, json={"message": "later"}, headers={"Retry-After": "2"}), "throttled",
     "Retry-After 2 s"),
    (lambda r: httpx.Response(200, json={"key_size": "256"}), "malformed", "no non-negative integer key_size"),
])
def test_failures_of_status_become_faults(settings, handler, kind: str, reason: str) -> None:
    with pytest.raises(DeviceFault) as caught:
        device(settings, handler).status()
    assert caught.value.kind == kind and reason in caught.value.message


def test_a_device_s_message_is_cut_short_and_printable(settings) -> None:
    with pytest.raises(DeviceFault) as caught:
        device(settings, lambda r: httpx.Response(503, json={"message": "x\n" * 500})).status()
    assert "\n" not in caught.value.message and len(caught.value.message) < 200


def test_unknown_key_ids_at_dec_keys_are_named(settings) -> None:
    answer = {"message": "one or more keys specified are not found on KME"}
    with pytest.raises(DeviceFault) as caught:
        device(settings, lambda r: httpx.Response(400, json=answer)).dec_keys([KEY_ID])
    assert caught.value.kind == "unknown_key_id"


def test_slow_answers_are_reported(settings) -> None:
    heard = []
    ticks = iter([0.0, 0.8])
    status = {name: 1 for name in ("key_size", "stored_key_count", "max_key_count", "max_key_per_request",
                                   "max_key_size", "min_key_size", "max_SAE_ID_count")}
    answered = device(settings, lambda r: httpx.Response(200, json=status), lambda op, s: heard.append((op, s)),
                      clock=lambda: next(ticks)).status()
    assert isinstance(answered, DeviceStatus) and heard == [("status", 0.8)]


def key(key_id: str = KEY_ID, size: int = 32) -> DeliveredKey:
    return DeliveredKey(key_id, b"\x01" * size, {})


@pytest.mark.parametrize("keys, kwargs, kind", [
    ([key(), key()], {"expected_count": 2}, "repeated_key"),
    ([key(KEY_ID.upper()), key()], {"expected_count": 2}, "repeated_key"),
    ([key(size=31)], {"expected_count": 1}, "wrong_length"),
    ([key("not-a-uuid")], {"expected_count": 1}, "malformed"),
    ([key()], {"expected_count": 2}, "wrong_count"),
    ([key()], {"expected_ids": ["0f78334b-c0a2-409c-930a-d97cdcbdd8cb"]}, "wrong_keys"),
])
def test_wrong_answers_are_refused(keys, kwargs, kind: str) -> None:
    with pytest.raises(DeviceFault) as caught:
        checked_keys(keys, 256, "enc_keys", **kwargs)
    assert caught.value.kind == kind


def test_keys_come_back_in_the_order_asked() -> None:
    other = "0f78334b-c0a2-409c-930a-d97cdcbdd8cb"
    keys = checked_keys([key(other), key()], 256, "dec_keys", expected_ids=[KEY_ID, other.upper()])
    assert [k.key_id for k in keys] == [KEY_ID, other]
