"""ETSI GS QKD 004 status codes, what each means for a link end's health, and the HTTP
status the AIT push-mode API pairs with each.

Sources: the status enumeration of ait-crypto/etsi-gs-qkd-004-push-mode-API-specification,
etsi_004_push_mode_qkd_server.yaml (v1.0.1, commit 2434072157bb1efee6b58a6cb2c4c317c1a93829),
components/schemas/status; the HTTP code of each from the same project's rendered KMS
document (https://ait-crypto.github.io/etsi-gs-qkd-004-push-mode-API-specification/main/html/kms.html).
The health states are qkms's own reading.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.devices.errors import DeviceFault


@dataclass(frozen=True)
class Status004:
    code: int
    meaning: str
    #: The link end's health while this status stands: "up", "degraded" or "down".
    health: str
    http_status: int


STATUSES: dict[int, Status004] = {s.code: s for s in (
    Status004(0, "successful", "up", 200),
    Status004(1, "successful connection, but the peer is not connected", "degraded", 200),
    Status004(2, "GET_KEY failed: insufficient key available", "degraded", 500),
    Status004(3, "GET_KEY failed: the peer application is not yet connected", "degraded", 400),
    Status004(4, "no QKD connection available", "down", 500),
    Status004(5, "OPEN_CONNECT failed: the key stream ID is already in use", "degraded", 400),
    Status004(6, "the call timed out (TIMEOUT_ERROR)", "degraded", 500),
    Status004(7, "OPEN failed: the requested QoS cannot be met (counter-proposal returned)", "degraded", 500),
    Status004(8, "GET_KEY failed: the metadata field is too small", "degraded", 400),
)}


def describe(code: int, operation: str) -> str:
    """The health reason for ``code`` answered to ``operation``."""
    status = STATUSES.get(code)
    meaning = status.meaning if status else "not an ETSI 004 status"
    return f"the device answered {operation} with ETSI 004 status {code}: {meaning}"


def fault(code: int, operation: str) -> DeviceFault:
    """The DeviceFault of a failing status (kind ``status_<code>``; severe if health is down)."""
    status = STATUSES.get(code)
    return DeviceFault(f"status_{code}", describe(code, operation), severe=status is None or status.health == "down")
