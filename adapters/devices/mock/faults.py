"""What a mock device can be told to do wrong (``--fault NAME[:PARAM=VALUE,...]`` at start,
``POST /mock/v1/faults`` at run time).

| fault | the device ... | parameters |
|---|---|---|
| ``down`` | closes its ETSI port and every open connection | |
| ``unavailable`` | answers every ETSI request with 503 | |
| ``slow`` | answers every ETSI request after ``delay_s`` | ``delay_s`` (4) |
| ``throttle`` | answers 503, Retry-After, beyond ``rate_per_s`` requests/s | ``rate_per_s`` (2), ``retry_after_s`` (1) |
| ``malformed-json`` | answers 200 with a body that is not JSON (status, enc_keys, dec_keys) | |
| ``wrong-length`` | delivers keys one byte short | |
| ``unknown-key-id`` | gives its master a key_ID its peer device never reserved | |
| ``different-bytes`` | delivers keys with their first bit flipped | |
| ``repeat-key`` | delivers, in place of a new key, one it delivered before | |
| ``open-status`` | answers ETSI 004 open-connect with ``status`` | ``status`` (0-8) |
| ``get-key-status`` | answers ETSI 004 get-key with ``status`` | ``status`` (0-8) |
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kms.errors import BadRequest

#: name -> default parameters (every parameter a number).
FAULTS: dict[str, dict[str, float]] = {
    "down": {},
    "unavailable": {},
    "slow": {"delay_s": 4.0},
    "throttle": {"rate_per_s": 2.0, "retry_after_s": 1.0},
    "malformed-json": {},
    "wrong-length": {},
    "unknown-key-id": {},
    "different-bytes": {},
    "repeat-key": {},
    "open-status": {"status": 4.0},
    "get-key-status": {"status": 2.0},
}


@dataclass(frozen=True)
class Fault:
    name: str
    params: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name + (":" + ",".join(f"{k}={v:g}" for k, v in self.params.items()) if self.params else "")


def parse_fault(spec: str) -> Fault:
    """``NAME`` or ``NAME:PARAM=VALUE,...``; BadRequest naming what is wrong."""
    name, _, rest = spec.strip().partition(":")
    if name not in FAULTS:
        raise BadRequest(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    params = dict(FAULTS[name])
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in params:
            raise BadRequest(f"fault {name} has no parameter {key!r}")
        try:
            params[key] = float(value)
        except ValueError:
            raise BadRequest(f"fault {name}: {key} must be a number") from None
    return Fault(name, params)


class FaultSet:
    """The faults in force on one device; thread-safe."""

    def __init__(self, faults: list[Fault] = ()):
        self._faults = {fault.name: fault for fault in faults}
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._window_count = 0

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._faults[fault.name] = fault

    def clear(self, name: str | None = None) -> None:
        """Clear one fault, or all of them with None."""
        with self._lock:
            if name is None:
                self._faults.clear()
            else:
                self._faults.pop(name, None)

    def get(self, name: str) -> Fault | None:
        with self._lock:
            return self._faults.get(name)

    def active(self) -> list[str]:
        with self._lock:
            return sorted(str(fault) for fault in self._faults.values())

    def throttled(self) -> float | None:
        """Retry-After (s) if this request is beyond the throttle's rate, else None."""
        with self._lock:
            fault = self._faults.get("throttle")
            if fault is None:
                return None
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            return fault.params["retry_after_s"] if self._window_count > fault.params["rate_per_s"] else None
