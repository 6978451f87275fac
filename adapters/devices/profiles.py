"""Vendor profiles: a plain name -> frozen settings map.

A profile holds only what is known about a kind of device, each value with its
public source; everything else is a setting of the link's source section with a safe
default (``adapters.devices.settings``), marked "setting, not sourced" there. A
link's section may override any profile value.

Sources:

- [QURSA] qursa-uc3m/qkd-etsi-api-c-wrapper, src/etsi014/backends/qkd_etsi014_backend.c
  (commit 0030d1295eb0e8e3f30ece716745ebd3b02c561e) and src/cerberis_xgr.c (commit
  1980ddcf02cb5507bbc1e9662f0a3e45ad6ee83d): an ETSI 014 client written against an ID
  Quantique Cerberis XGR: ``GET .../enc_keys?number=N&size=S``, ``POST .../dec_keys``
  with ``{"key_IDs": [{"key_ID": ...}]}``, ``DEFAULT_KEY_SIZE 256``, the opaque SAE ID
  ``"CONSB"``, and ``CURLOPT_SSL_VERIFYHOST 0`` (host name verification switched off:
  here the expected name is the ``server_name`` setting instead, never off).
- [ISSUE9] qkms issue 9 / DESIGN.md section 4, facts found in public client code: IDQ
  Cerberis XGR and Toshiba systems answer ETSI 014 themselves; clients use 256-bit
  keys; a status seen from such a device: key_size 256, max_key_per_request 1,
  max_key_count 100000, min/max key size 256, max_SAE_ID_count 0.
- [AIT004] ait-crypto/etsi-gs-qkd-004-push-mode-API-specification,
  etsi_004_push_mode_qkd_server.yaml (v1.0.1, commit 2434072157bb1efee6b58a6cb2c4c317c1a93829):
  QoS examples ``key_chunk_size`` 32 (bytes) and ``ttl`` 600 (s); base path
  ``/api/v1/kms/etsi004`` of the device, ``/api/v1/qkd/etsi004`` of the KMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Mapping

Protocol = Literal["etsi014", "etsi004"]


@dataclass(frozen=True)
class DeviceProfile:
    """A kind of device: the protocol it speaks and the settings known for it."""

    name: str
    protocol: Protocol
    summary: str
    settings: Mapping[str, Any]


PROFILES: Mapping[str, DeviceProfile] = MappingProxyType({profile.name: profile for profile in (
    DeviceProfile("idq-cerberis-xgr", "etsi014", "ID Quantique Cerberis XGR (the device is an ETSI 014 KME)",
                  MappingProxyType({
                      "key_size_bits": 256,      # [QURSA] DEFAULT_KEY_SIZE 256; [ISSUE9] status key_size 256
                      "keys_per_request": 1,     # [ISSUE9] status max_key_per_request 1
                      "enc_keys_method": "GET",  # [QURSA] GET enc_keys?number=N&size=256
                      "dec_keys_method": "POST",  # [QURSA] POST dec_keys {"key_IDs": [...]}
                  })),
    DeviceProfile("toshiba", "etsi014", "Toshiba QKD system (the device is an ETSI 014 KME)",
                  MappingProxyType({
                      # [ISSUE9] 256-bit keys in public client code of such devices; not
                      # confirmed for Toshiba from a Toshiba document: override if yours differs.
                      "key_size_bits": 256,
                      # Setting, not sourced: one key per request is what every device
                      # accepts; the device's status caps it anyway (max_key_per_request).
                      "keys_per_request": 1,
                      "enc_keys_method": "GET",  # [ISSUE9] clients of such devices call GET enc_keys
                      "dec_keys_method": "POST",  # [ISSUE9] and fetch with POST dec_keys
                  })),
    DeviceProfile("etsi014-generic", "etsi014", "any device that is an ETSI GS QKD 014 V1.1.1 KME",
                  MappingProxyType({
                      # Setting, not sourced: ETSI 014's default key_size is the device's own;
                      # 256 bits is what the devices above use.
                      "key_size_bits": 256,
                      # Setting, not sourced: batched within the device's status
                      # max_key_per_request, whichever is smaller.
                      "keys_per_request": 32,
                      "enc_keys_method": "POST",  # ETSI GS QKD 014 V1.1.1 section 5.2: both forms defined
                      "dec_keys_method": "POST",
                  })),
    DeviceProfile("etsi004-push", "etsi004", "a device that pushes keys (ETSI GS QKD 004 push mode, AIT API)",
                  MappingProxyType({
                      "key_chunk_size_bytes": 32,  # [AIT004] qos.key_chunk_size example: 32
                      "ttl_s": 600,                # [AIT004] qos.ttl example: 600
                  })),
)})


def profile(name: str) -> DeviceProfile:
    """The profile called ``name``; KeyError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None
