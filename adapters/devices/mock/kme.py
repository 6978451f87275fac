"""A mock device's key management: what its ETSI 014 interface serves.

Built from the node's own domain pieces, so it is as strict as a node: the simulated
link's blocks go into the in-memory link pools (``kms.pools``: halves by sequence
parity), an enc_keys carves from the device's own half (or, when that is empty, from its
copy of the peer's) and has the peer device take exactly the same segments and hold
them as reservations for the slave SAEs (the in-memory key store: all-or-none claims, 401 for a caller that is not a
slave, expiry); a dec_keys claims them. A key's key_ID is derived from where its bits
start (block id and offset), so both devices name it alike. :class:`MockKme` has the
interface the ETSI blueprint (``etsi_api.keys_api``) expects of a key service.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from adapters.devices.mock.config import MockDeviceConfig
from adapters.devices.mock.faults import FaultSet
from kms.errors import BadRequest, ExtensionNotSupported, Unavailable
from kms.keys import Key, KeyBlock, KeyRequest, Provenance, Reservation
from kms.pools import PoolMismatch, Segment, owner_of
from kms.service import KeyStatus
from kms.storage import StorageLimits, open_memory_storage

KEY_ID_NAMESPACE = uuid.UUID("2b0f7f5e-3c1d-4e7a-9a55-8d2f4c6b9e10")


def key_id_for(segments: Sequence[Segment]) -> str:
    """The key_ID both devices give the key whose bits start at ``segments[0]``."""
    first = segments[0]
    return str(uuid.uuid5(KEY_ID_NAMESPACE, f"{first.block_id}:{first.offset}"))


class PeerDevice(ABC):
    """The other device of the pair, as this one reaches it."""

    @abstractmethod
    def call(self, what: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Ask the peer device to do ``what`` (``reserve``: hold keys for slaves, see
        :meth:`MockKme.hold_for_peer`; ``qkd004/...``: key streams). None when done, else
        the peer's refusal (``{"head": [sequence, offset] | None}`` when it lacks the
        bits); Unavailable if it cannot be reached."""


class MockKme:
    """One device: its SAEs, its pools and reservations, its peer."""

    def __init__(self, config: MockDeviceConfig, faults: FaultSet, peer: PeerDevice | None = None):
        self.config = config
        self.faults = faults
        self.peer = peer
        self._ends = (config.name, config.peer_name)
        limits = config.limits
        self._storage = open_memory_storage(config.name, limits=StorageLimits(capacity_keys=limits.max_key_count))
        self._identities = {sae.identity or sae.id: sae.id for sae in config.saes}
        self._peer_saes = frozenset(config.peer_saes)
        self._enc_lock = threading.Lock()
        self._delivered_lock = threading.Lock()
        self._last_delivered: Key | None = None
        self._provenance = Provenance(("mock-qkd-device",), ("decoy-bb84-simulation",), self._ends)

    @property
    def kme_id(self) -> str:
        return self.config.name

    # --- feeding ------------------------------------------------------------------------------

    def add_block(self, block: KeyBlock) -> None:
        """A block of the simulated link: into the half of the device that owns it."""
        owner = owner_of(block, self._ends)
        self._storage.pools.add_blocks(self.config.link_id, owner, [block])
        cap_bits = self.config.limits.max_key_count * self.config.limits.key_size_bits
        while self._storage.pools.available_bits(self.config.link_id, owner) > cap_bits:
            head = self._storage.pools.head(self.config.link_id, owner)
            self._storage.pools.discard_before(self.config.link_id, owner, head[0] + 1, 0)

    def stored_keys(self) -> int:
        """Keys of the default size this device could give its SAEs now (from both halves)."""
        bits = sum(self._storage.pools.available_bits(self.config.link_id, owner) for owner in self._ends)
        return min(self.config.limits.max_key_count, bits // self.config.limits.key_size_bits)

    # --- the ETSI 014 service interface (as kms.service.KeyService) ---------------------------

    def sae_for_identity(self, identity: str | None) -> str | None:
        return self._identities.get(identity) if identity is not None else None

    def status(self, master_id: str, slave_id: str) -> KeyStatus:
        self._check_slave(slave_id, master_id)
        limits = self.config.limits
        return KeyStatus(self.kme_id, self.config.peer_name, master_id, slave_id, limits.key_size_bits,
                         self.stored_keys(), limits.max_key_count, limits.max_keys_per_request,
                         limits.max_key_size_bits, limits.min_key_size_bits, limits.max_sae_id_count, {})

    def enc_keys(self, master_id: str, slave_id: str, request: KeyRequest) -> list[Key]:
        slaves = self._validate(master_id, slave_id, request)
        with self._enc_lock:
            keys = self._carve_and_reserve(master_id, slaves, request)
        return self._misbehave(keys, "enc_keys")

    def _carve_and_reserve(self, master_id: str, slaves: frozenset[str], request: KeyRequest) -> list[Key]:
        """Carve from this device's pool half, else from its copy of the peer's half, and
        have the peer take the same segments; a race with the peer carving the same bits
        fails at the peer's atomic take (the bits are burnt, never used twice)."""
        for owner in (self.kme_id, self.config.peer_name):
            keys = self._carve_from(owner, master_id, slaves, request)
            if keys is not None:
                return keys
        raise Unavailable("keys are not available at the peer device yet")

    def _carve_from(self, owner: str, master_id: str, slaves: frozenset[str], request: KeyRequest) -> list[Key] | None:
        pools, link = self._storage.pools, self.config.link_id
        for attempt in range(2):
            try:
                carved = pools.carve(link, owner, [request.size_bits // 8] * request.number)
            except Unavailable:
                return None
            keys = [Key(key_id_for(c.segments), c.material, self._provenance) for c in carved]
            offer = {"owner": owner, "master": master_id, "slaves": sorted(slaves),
                     "ttl_s": self.config.reservation_ttl_s, "keys": [{"key_ID": key.key_id, "size": request.size_bits,
                               "segments": [s.to_list() for s in c.segments]} for key, c in zip(keys, carved)]}
            refusal = self.peer.call("reserve", offer)
            if refusal is None:
                return keys
            head = refusal.get("head")
            if attempt == 0 and isinstance(head, list) and len(head) == 2:
                pools.discard_before(link, owner, int(head[0]), 0)
        return None

    def dec_keys(self, slave_id: str, master_id: str, key_ids: Sequence[str]) -> list[Key]:
        if not key_ids:
            raise BadRequest("key_IDs must list at least one key_ID")
        if len(set(key_ids)) != len(key_ids):
            raise BadRequest("key_IDs must not repeat a key_ID")
        if len(key_ids) > self.config.limits.max_keys_per_request:
            raise BadRequest(f"at most {self.config.limits.max_keys_per_request} key_IDs per request")
        keys = self._storage.store.claim(key_ids, slave_id, master_id)
        return self._misbehave(keys, "dec_keys")

    # --- ETSI 004 chunks ----------------------------------------------------------------------

    def carve_chunk(self, size_bytes: int) -> tuple[str, list[Segment], bytes] | None:
        """(owner of the half, segments, material) of a chunk, from this device's own half
        or else its copy of the peer's (None if neither has enough)."""
        for owner in (self.kme_id, self.config.peer_name):
            try:
                (carved,) = self._storage.pools.carve(self.config.link_id, owner, [size_bytes])
            except Unavailable:
                continue
            return owner, list(carved.segments), carved.material
        return None

    def take_segments(self, owner: str, keys: Sequence[Sequence[Segment]]) -> list[bytes]:
        """The same bits the peer carved from ``owner``'s half (PoolMismatch if this
        device lacks them, BadRequest for a half that is not the link's)."""
        if owner not in self._ends:
            raise BadRequest("no such pool half")
        return self._storage.pools.take_segments(self.config.link_id, owner, keys)

    def half_head(self, owner: str) -> list[int] | None:
        head = self._storage.pools.head(self.config.link_id, owner)
        return list(head) if head else None

    # --- from the peer device -----------------------------------------------------------------

    def hold_for_peer(self, offer: dict[str, Any]) -> dict[str, Any] | None:
        """Take the segments the peer carved and hold the keys for their slaves; None on
        success, else ``{"head": ...}`` (where this device's copy of the peer's half starts)."""
        entries, owner = offer["keys"], offer.get("owner", self.config.peer_name)
        segments = [[Segment.from_list(item) for item in entry["segments"]] for entry in entries]
        try:
            materials = self.take_segments(owner, segments)
        except PoolMismatch:
            return {"head": self.half_head(owner)}
        keys = [Key(entry["key_ID"], material, self._provenance) for entry, material in zip(entries, materials)]
        slaves = frozenset(offer["slaves"])
        self._storage.store.reserve([Reservation(key, offer["master"], slaves) for key in keys],
                                    int(offer["ttl_s"]))
        return None

    # --- checks, as a node makes them ----------------------------------------------------------

    def _check_slave(self, slave_id: str, master_id: str) -> None:
        if slave_id not in self._peer_saes:
            raise BadRequest("unknown slave_SAE_ID", [{"slave_SAE_ID": slave_id}])
        if slave_id == master_id:
            raise BadRequest("slave_SAE_ID must differ from the master SAE")

    def _validate(self, master_id: str, slave_id: str, request: KeyRequest) -> frozenset[str]:
        self._check_slave(slave_id, master_id)
        if request.extension_mandatory:
            names = sorted({name for ext in request.extension_mandatory for name in ext})
            raise ExtensionNotSupported(details=[{"extension_mandatory": names}])
        limits = self.config.limits
        if request.size_bits % 8:
            raise BadRequest("size shall be a multiple of 8")
        if not limits.min_key_size_bits <= request.size_bits <= limits.max_key_size_bits:
            raise BadRequest(f"size must be between {limits.min_key_size_bits} and {limits.max_key_size_bits} bits")
        if not 1 <= request.number <= limits.max_keys_per_request:
            raise BadRequest(f"number must be between 1 and {limits.max_keys_per_request}")
        extra = request.additional_slave_ids
        if len(extra) > limits.max_sae_id_count:
            raise BadRequest(f"at most {limits.max_sae_id_count} additional_slave_SAE_IDs")
        slaves = [slave_id, *extra]
        if len(set(slaves)) != len(slaves):
            raise BadRequest("additional_slave_SAE_IDs must not repeat a slave")
        for sae in extra:
            self._check_slave(sae, master_id)
        return frozenset(slaves)

    # --- misbehaving ---------------------------------------------------------------------------

    def _misbehave(self, keys: list[Key], operation: str) -> list[Key]:
        """The keys as the faults in force deliver them (no fault: unchanged)."""
        with self._delivered_lock:
            previous, self._last_delivered = self._last_delivered, (keys[-1] if keys else self._last_delivered)
        out = list(keys)
        if self.faults.get("repeat-key") and previous is not None:
            out[0] = previous if operation == "enc_keys" else Key(out[0].key_id, previous.material, previous.provenance)
        if self.faults.get("unknown-key-id") and operation == "enc_keys":
            out[0] = Key(str(uuid.uuid4()), out[0].material, out[0].provenance)
        if self.faults.get("wrong-length"):
            out[0] = Key(out[0].key_id, out[0].material[:-1], out[0].provenance)
        if self.faults.get("different-bytes"):
            out = [Key(k.key_id, bytes([k.material[0] ^ 0x80]) + k.material[1:], k.provenance) for k in out]
        return out
