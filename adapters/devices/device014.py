"""A QKD device that is an ETSI GS QKD 014 KME, as the node (its SAE) sees it.

:class:`HttpDevice014` calls the device with the reusable client
(``adapters.etsi014_client``) and turns every way a call can go wrong into a
:class:`DeviceFault` with a health reason; :func:`checked_keys` refuses answers that
are well-formed but wrong (a missing, extra or repeated key, a key_ID that is not a
UUID, a key of the wrong length). Key material never enters a reason.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.devices.errors import DeviceFault, reaching_device
from adapters.devices.settings import Etsi014Settings
from adapters.etsi014_client import DeliveredKey, Etsi014Client, Etsi014Error, Etsi014ProtocolError

#: ETSI GS QKD 014 V1.1.1's message for unknown key_IDs (section 7.4).
KEYS_NOT_FOUND = "one or more keys specified are not found on KME"
STATUS_INTEGERS = ("key_size", "stored_key_count", "max_key_count", "max_key_per_request", "max_key_size",
                   "min_key_size", "max_SAE_ID_count")


@dataclass(frozen=True)
class DeviceStatus:
    """The integers of an ETSI 014 status answer (sizes in bits)."""

    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_SAE_ID_count: int

    @classmethod
    def parse(cls, body: dict[str, Any]) -> "DeviceStatus":
        for name in STATUS_INTEGERS:
            value = body.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DeviceFault("malformed", f"the device's status has no non-negative integer {name}")
        return cls(*(body[name] for name in STATUS_INTEGERS))


class Device014(ABC):
    """The three calls a link end makes to its ETSI 014 device, checked."""

    @abstractmethod
    def status(self) -> DeviceStatus:
        """Status towards the other end's SAE."""

    @abstractmethod
    def enc_keys(self, number: int, size_bits: int) -> list[DeliveredKey]:
        """``number`` new keys for the other end's SAE (this node as master SAE)."""

    @abstractmethod
    def dec_keys(self, key_ids: Sequence[str]) -> list[DeliveredKey]:
        """The keys the other end's SAE obtained under ``key_ids`` (this node as slave SAE)."""

    def close(self) -> None:
        """Release connections."""


class HttpDevice014(Device014):
    """The device over HTTPS with mutual TLS; ``on_slow(operation, seconds)`` hears of
    answers slower than ``slow_answer_s``; ``transport`` stands in for the network and
    ``clock`` times answers (tests)."""

    def __init__(self, settings: Etsi014Settings, on_slow: Callable[[str, float], None] = lambda *_: None,
                 transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._on_slow = on_slow
        self._transport = transport
        self._clock = clock
        self._client: Etsi014Client | None = None

    def _kme(self) -> Etsi014Client:
        if self._client is None:
            s = self._settings
            try:
                self._client = Etsi014Client(s.url, s.cert, s.key, s.ca, timeout_s=s.timeout_s,
                                             server_name=s.server_name, transport=self._transport)
            except (OSError, ValueError) as exc:
                raise DeviceFault("tls_files", f"cannot load the device's TLS files: {exc}") from None
        return self._client

    def status(self) -> DeviceStatus:
        body = self._call("status", lambda kme: kme.status(self._settings.peer_sae_id))
        return DeviceStatus.parse(body)

    def enc_keys(self, number: int, size_bits: int) -> list[DeliveredKey]:
        use_get = self._settings.enc_keys_method == "GET"
        return self._call("enc_keys", lambda kme: kme.enc_keys(self._settings.peer_sae_id, number, size_bits,
                                                               use_get=use_get))

    def dec_keys(self, key_ids: Sequence[str]) -> list[DeliveredKey]:
        use_get = self._settings.dec_keys_method == "GET"
        return self._call("dec_keys", lambda kme: kme.dec_keys(self._settings.peer_sae_id, key_ids, use_get=use_get))

    def _call(self, operation: str, call: Callable[[Etsi014Client], Any]) -> Any:
        kme = self._kme()
        started = self._clock()
        try:
            with reaching_device(self._settings.url, self._settings.timeout_s, operation):
                return call(kme)
        except Etsi014ProtocolError as exc:
            raise DeviceFault("malformed", f"the device sent a malformed answer to {operation}: {exc.what}") from None
        except Etsi014Error as exc:
            raise _refusal(operation, exc) from None
        finally:
            elapsed = self._clock() - started
            if elapsed > self._settings.slow_answer_s:
                self._on_slow(operation, elapsed)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _refusal(operation: str, exc: Etsi014Error) -> DeviceFault:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = "".join(ch if ch.isprintable() else "?" for ch in str(body.get("message", "")))[:120] or "no message"
    if exc.status == 503 and exc.retry_after_s is not None:
        return DeviceFault("throttled", f"the device is throttling ({operation}: 503 {message}; "
                                        f"Retry-After {exc.retry_after_s:g} s)", exc.retry_after_s)
    if exc.status == 503:
        return DeviceFault("unavailable", f"the device answered 503 to {operation}: {message}")
    if exc.status == 400 and operation == "dec_keys" and message == KEYS_NOT_FOUND:
        return DeviceFault("unknown_key_id", f"the device does not hold key_IDs its peer device gave out "
                                             f"(dec_keys: 400 {message})")
    if exc.status == 401:
        return DeviceFault("unauthorized", f"the device refused this node as its SAE ({operation}: 401 {message})")
    return DeviceFault("refused", f"the device answered {exc.status} to {operation}: {message}")


def checked_keys(keys: Sequence[DeliveredKey], size_bits: int, operation: str,
                 expected_ids: Sequence[str] | None = None, expected_count: int | None = None) -> list[DeliveredKey]:
    """``keys`` if the device delivered what was asked: ``expected_count`` keys (or exactly
    ``expected_ids``, returned in that order), key_IDs that are UUIDs, each once (compared
    in canonical form), each of ``size_bits``; DeviceFault otherwise."""
    by_id: dict[str, DeliveredKey] = {}
    for key in keys:
        key_id = _canonical_uuid(key.key_id, operation)
        if key_id in by_id:
            raise DeviceFault("repeated_key", f"the device delivered key_ID {key_id} twice in one answer ({operation})")
        if len(key.material) * 8 != size_bits:
            raise DeviceFault("wrong_length", f"the device sent a key of {len(key.material) * 8} bits, "
                                              f"expected {size_bits} ({operation})")
        by_id[key_id] = key
    if expected_ids is not None:
        wanted = [_canonical_uuid(key_id, operation) for key_id in expected_ids]
        if set(wanted) != set(by_id):
            raise DeviceFault("wrong_keys", f"the device answered {operation} with other key_IDs than asked for")
        return [by_id[key_id] for key_id in wanted]
    if expected_count is not None and len(by_id) != expected_count:
        raise DeviceFault("wrong_count", f"the device delivered {len(by_id)} keys, asked for {expected_count} "
                                         f"({operation})")
    return list(by_id.values())


def _canonical_uuid(value: str, operation: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise DeviceFault("malformed", f"the device sent a key_ID that is not a UUID ({operation})") from None
