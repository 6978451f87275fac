"""What a device delivered twice is refused, by key_ID or by material; nothing of the key is kept."""

from __future__ import annotations

import pytest

from adapters.devices.errors import DeviceFault
from adapters.devices.replay import SeenKeys

K1, K2, K3 = ("11111111-1111-4111-8111-111111111111", b"\x01" * 32), \
    ("22222222-2222-4222-8222-222222222222", b"\x02" * 32), ("33333333-3333-4333-8333-333333333333", b"\x03" * 32)


def test_a_key_id_delivered_again_is_refused() -> None:
    seen = SeenKeys()
    seen.admit([K1, K2], "enc_keys")
    with pytest.raises(DeviceFault, match=f"key_ID {K1[0]} a second time") as caught:
        seen.admit([K3, K1], "enc_keys")
    assert caught.value.kind == "repeated_key"
    seen.admit([K3], "enc_keys")  # nothing of the refused answer was remembered


def test_the_same_material_under_a_new_key_id_is_refused() -> None:
    seen = SeenKeys()
    seen.admit([K1], "enc_keys")
    with pytest.raises(DeviceFault, match="material it had delivered before"):
        seen.admit([(K2[0], K1[1])], "enc_keys")


def test_a_repeat_within_one_answer_is_refused() -> None:
    with pytest.raises(DeviceFault, match="a second time"):
        SeenKeys().admit([K1, K1], "enc_keys")


def test_memory_is_bounded_and_holds_no_material() -> None:
    seen = SeenKeys(capacity=4)
    seen.admit([K1, K2], "enc_keys")
    seen.admit([K3], "enc_keys")
    seen.admit([K1], "enc_keys")  # K1 was forgotten: the oldest entries go first
    assert all(K1[1].hex() not in entry and K1[1].hex()[:16] not in entry for entry in seen._seen)
