"""The ``qkd-device`` source: a link fed by a pair of ETSI GS QKD 014 devices.

Each node is an SAE of its end's device. The master end (``adapters.devices.paired``)
asks its device for ``keys_per_block`` keys with enc_keys (in requests of at most the
device's ``max_key_per_request``, and only when the device's status shows that many
stored) for the other node's SAE, and offers the block to the slave end: the key_IDs,
never the keys. The slave end fetches the same keys from its device with dec_keys.
Both concatenate the keys in the master's key_ID order; the block id is derived from
those key_IDs, so both ends name the block alike.

Settings: ``adapters.devices.settings.Etsi014Settings`` (docs/devices.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from adapters.devices.device014 import Device014, DeviceStatus, HttpDevice014, checked_keys
from adapters.devices.errors import DeviceFault
from adapters.devices.paired import LazyConnection, PairedDeviceSource, log
from adapters.devices.replay import SeenKeys
from adapters.devices.settings import Etsi014Settings, Role
from adapters.etsi014_client import DeliveredKey
from kms.errors import BadRequest
from kms.sources import SourceContext

#: Names block ids after the key_IDs they hold (any fixed UUID would do; both ends share it).
BLOCK_NAMESPACE = uuid.UUID("6f1d35c4-5a8e-4a57-9d0e-6b7c2f8a1e01")
#: Keys gathered towards a block are given up after this long (the slave's device may
#: have let their reservations expire).
GATHER_MAX_AGE_S = 60.0
MAX_KEYS_PER_OFFER = 4096


def block_id(link_id: str, key_ids: Sequence[str]) -> str:
    """The id both ends give the block made of these keys, in this order."""
    canonical = "|".join(str(uuid.UUID(key_id)) for key_id in key_ids)
    return f"{link_id}:{uuid.uuid5(BLOCK_NAMESPACE, canonical)}"


class Etsi014DeviceSource(PairedDeviceSource):
    """Both ends of a link, each fed by its ETSI 014 device (module docs)."""

    kind = "qkd-device"
    protocol_name = "etsi-gs-qkd-014"
    protocol = "etsi014"
    default_profile = "etsi014-generic"

    def __init__(self, settings: Etsi014Settings, context: SourceContext, role: Role,
                 device_factory: Callable[[], Device014] | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time):
        super().__init__(settings, context, role, clock)
        self._settings: Etsi014Settings = settings
        self._device: LazyConnection[Device014] = LazyConnection(
            device_factory or (lambda: HttpDevice014(settings, self._slow)))
        self._wall_clock = wall_clock
        self._seen = SeenKeys()
        self._gathered: list[DeliveredKey] = []
        self._gathered_since = 0.0
        self._last_status: DeviceStatus | None = None

    def _slow(self, operation: str, seconds: float) -> None:
        self._health.noted("slow", f"the device took {seconds:.1f} s to answer {operation} "
                                   f"(slow_answer_s {self._settings.slow_answer_s:g})")

    def _release(self) -> None:
        device = self._device.take()
        if device is not None:
            device.close()

    # --- master -----------------------------------------------------------------------------

    def _master_step(self) -> bool:
        if not self._wants_more():
            self._probe()
            return False
        if self._gathered and self._clock() - self._gathered_since > GATHER_MAX_AGE_S:
            log.warning("link %s: %d keys gathered %.0f s ago given up", self._link_id, len(self._gathered),
                        GATHER_MAX_AGE_S)
            self._gathered = []
        per_block = self._settings.keys_per_block
        status = self._device.get().status()
        self._last_status = status
        batch = self._batch_size(status)
        if status.stored_key_count < min(batch, per_block - len(self._gathered)):
            self._health.succeeded(delivered=False)
            return False
        while len(self._gathered) < per_block:
            try:
                self._gather(min(batch, per_block - len(self._gathered)))
            except DeviceFault as fault:
                if fault.kind != "unavailable":
                    raise
                self._health.drained(fault.message)  # it just answered status: alive, out of keys
                return False
        keys, self._gathered = self._gathered, []
        key_ids = [key.key_id for key in keys]
        self._offer(b"".join(key.material for key in keys), block_id(self._link_id, key_ids), {"key_IDs": key_ids})
        self._health.succeeded()
        return True

    def _batch_size(self, status: DeviceStatus) -> int:
        size = self._settings.key_size_bits
        if not status.min_key_size <= size <= status.max_key_size:
            raise DeviceFault("unsupported", f"the device offers keys of {status.min_key_size} to "
                                             f"{status.max_key_size} bits, not key_size_bits {size}")
        if status.max_key_per_request < 1:
            raise DeviceFault("malformed", "the device's status gives max_key_per_request 0")
        return min(self._settings.keys_per_request, status.max_key_per_request)

    def _gather(self, number: int) -> None:
        size = self._settings.key_size_bits
        keys = checked_keys(self._device.get().enc_keys(number, size), size, "enc_keys", expected_count=number)
        self._seen.admit([(key.key_id, key.material) for key in keys], "enc_keys")
        fresh = [key for key in keys if self._lasts(key)]
        if not self._gathered:
            self._gathered_since = self._clock()
        self._gathered.extend(fresh)

    def _lasts(self, key: DeliveredKey) -> bool:
        """Whether the key outlives ``min_key_lifetime_s`` (keys without an expiry do)."""
        field = self._settings.expiry_field
        expiry = key.extension.get(field) if field else None
        if expiry is None:
            return True
        if isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
            raise DeviceFault("malformed", f"the device's key_extension.{field} is not a number of seconds")
        left = expiry - self._wall_clock()
        if left >= self._settings.min_key_lifetime_s:
            return True
        self._health.noted("expired", f"the device delivered a key expiring in {left:.0f} s "
                                      f"(min_key_lifetime_s {self._settings.min_key_lifetime_s:g}); not used")
        return False

    # --- slave --------------------------------------------------------------------------------

    def _slave_copy(self, message: dict[str, Any]) -> tuple[str, bytes]:
        key_ids = message.get("key_IDs")
        if not isinstance(key_ids, list) or not 0 < len(key_ids) <= MAX_KEYS_PER_OFFER \
                or not all(isinstance(key_id, str) for key_id in key_ids):
            raise BadRequest(f"key_IDs must be a list of 1 to {MAX_KEYS_PER_OFFER} strings")
        try:
            name = block_id(self._link_id, key_ids)
        except ValueError:
            raise BadRequest("key_IDs must be UUIDs") from None
        size, batch = self._settings.key_size_bits, self._settings.keys_per_request
        keys: list[DeliveredKey] = []
        for start in range(0, len(key_ids), batch):
            wanted = key_ids[start:start + batch]
            keys += checked_keys(self._device.get().dec_keys(wanted), size, "dec_keys", expected_ids=wanted)
        return name, b"".join(key.material for key in keys)

    def _probe(self) -> None:
        """A status probe of the device, when one is due."""
        if self._settings.probe_status and self._probe_due():
            self._last_status = self._device.get().status()
            self._probed()

    def health(self):
        report = super().health()
        if self._last_status is not None:
            report.metrics["device_stored_key_count"] = self._last_status.stored_key_count
        return report
