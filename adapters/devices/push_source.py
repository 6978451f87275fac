"""The ``qkd-device-004`` source: a link fed by a pair of devices that push key material
(ETSI GS QKD 004 push mode, the AIT API: ``adapters/devices/client004.py``).

The master end opens a key stream at its device (``open-connect`` without a
key_stream_id: the device assigns one), tells the slave end over the KM channel, which
opens the same stream at its device, and both ask for keys (``get-key`` from index 0).
Each device then pushes chunks ``{status, index, key_buffer, metadata.buffer.key_stream_id}``
to its node (``etsi_api/qkd004_api.py``), which leaves them in its inbox under
``<link>#pushed``. The master end makes a block of ``chunks_per_block`` consecutive
chunks and offers it to the slave end (``adapters.devices.paired``: key stream id, first
index and count, the equality check), which takes the same chunks from its own inbox.
Both ends name the block ``<key_stream_id>:<first index>``; its sequence is the master's
clock (so it keeps increasing across streams, where indexes start again at 0).

A device pushes at its own pace (``max_bps`` in the QoS asks it to slow down), so the
pool target does not apply: every chunk pushed becomes key material.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from adapters.devices.client004 import Qkd004Client
from adapters.devices.errors import DeviceFault
from adapters.devices.paired import LazyConnection, PairedDeviceSource, log
from adapters.devices.settings import Etsi004Settings, Role
from kms.errors import BadRequest
from kms.keys import KeyBlock
from kms.sources import SourceContext

#: Chunks one offer may span.
MAX_CHUNKS_PER_OFFER = 65536


class Etsi004DeviceSource(PairedDeviceSource):
    """Both ends of a link, each fed by pushes from its ETSI 004 device (module docs)."""

    kind = "qkd-device-004"
    protocol_name = "etsi-gs-qkd-004-push"
    protocol = "etsi004"
    default_profile = "etsi004-push"

    def __init__(self, settings: Etsi004Settings, context: SourceContext, role: Role,
                 client_factory: Callable[[], Qkd004Client] | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__(settings, context, role, clock)
        self._settings: Etsi004Settings = settings
        self._client: LazyConnection[Qkd004Client] = LazyConnection(
            client_factory or (lambda: Qkd004Client(settings)))
        self._ksid: str | None = None
        self._chunks: dict[int, bytes] = {}
        self._next_index = 0
        self._gap_since: float | None = None

    def _release(self) -> None:
        if self._role == "master" and self._ksid is not None:
            try:
                self._client.get().close(self._ksid)
            except DeviceFault as fault:
                log.warning("link %s: closing key stream %s: %s", self._link_id, self._ksid, fault.message)
            self._ksid = None
        client = self._client.take()
        if client is not None:
            client.close_connections()

    def _wants_more(self) -> bool:
        return self._queue.room() > 0

    @property
    def _pushed(self) -> str:
        return f"{self._link_id}#pushed"

    # --- pushes from the device (the node's key-material endpoint, a web worker) ----------------

    def accepts_pushes_from(self, names: Sequence[str]) -> bool:
        return self._settings.expected_name in names

    def accept_pushed(self, block: KeyBlock) -> None:
        size = self._settings.key_chunk_size_bytes
        if len(block.material) != size:
            raise BadRequest(f"key_buffer holds {len(block.material)} bytes; this link's chunks are {size}")
        inbox = self._context.inbox
        inbox.put(self._pushed, [block])
        excess = inbox.waiting(self._pushed) - self._settings.max_waiting_chunks
        if excess > 0:
            inbox.take(self._pushed, excess)

    # --- the master end ---------------------------------------------------------------------

    def _qos(self) -> dict[str, Any]:
        s = self._settings
        qos = {"key_chunk_size": s.key_chunk_size_bytes, "ttl": s.ttl_s, "metadata_mimetype": "application/json"}
        return qos | {k: v for k, v in (("max_bps", s.max_bps), ("min_bps", s.min_bps)) if v is not None}

    def _uris(self, kme_id: str, peer: str) -> tuple[str, str]:
        s = self._settings
        return s.source_uri or f"urn:qkms:kme:{kme_id}", s.destination_uri or f"urn:qkms:kme:{peer}"

    def _open_stream(self) -> None:
        client = self._client.get()
        ksid, _, granted = client.open_connect(*self._uris(self._context.kme_id, self._peer), self._qos())
        if granted.get("key_chunk_size", self._settings.key_chunk_size_bytes) != self._settings.key_chunk_size_bytes:
            client.close(ksid)
            raise DeviceFault("qos", f"the device grants chunks of {granted.get('key_chunk_size')} bytes, "
                                     f"not key_chunk_size_bytes {self._settings.key_chunk_size_bytes}")
        # Status 1 (the peer not connected yet) is what the first of the two ends hears.
        try:
            self._expect_ok(self._exchange({"op": "open", "key_stream_id": ksid}))
        except DeviceFault:
            client.close(ksid)
            raise
        client.get_key(ksid, 0)
        self._ksid, self._next_index, self._chunks, self._gap_since = ksid, 0, {}, None
        log.info("link %s: key stream %s open at both ends", self._link_id, ksid)

    def _collect(self) -> None:
        """Pushed chunks of the current stream, by index (others are dropped)."""
        for chunk in self._context.inbox.take(self._pushed, self._settings.max_waiting_chunks):
            ksid, _, index = chunk.block_id.rpartition(":")
            if ksid == self._ksid and int(index) >= self._next_index:
                self._chunks[int(index)] = chunk.material

    def _master_step(self) -> bool:
        if self._ksid is None:
            self._open_stream()
            return True
        self._collect()
        count, first = self._settings.chunks_per_block, self._next_index
        wanted = range(first, first + count)
        if not all(index in self._chunks for index in wanted):
            self._skip_gap()
            return False
        material = b"".join(self._chunks[index] for index in wanted)
        try:
            self._offer(material, f"{self._ksid}:{first}",
                        {"key_stream_id": self._ksid, "first_index": first, "count": count})
        except DeviceFault as fault:
            if fault.kind == "slave_not_yet" and not self._waited_too_long():
                return False
            self._drop(wanted)
            raise
        self._drop(wanted)
        self._gap_since = None
        self._health.succeeded()
        return True

    def _drop(self, indexes: range) -> None:
        for index in indexes:
            self._chunks.pop(index, None)
        self._next_index = max(self._next_index, indexes.stop)

    def _waited_too_long(self) -> bool:
        now = self._clock()
        self._gap_since = self._gap_since or now
        return now - self._gap_since > self._settings.align_timeout_s

    def _skip_gap(self) -> None:
        """Chunks that never came (later ones did) are given up after ``align_timeout_s``."""
        later = [index for index in self._chunks if index > self._next_index]
        if self._next_index in self._chunks or not later or not self._waited_too_long():
            return
        skipped_to = min(later)
        self._health.noted("gap", f"the device never pushed chunks {self._next_index}..{skipped_to - 1} of "
                                  f"stream {self._ksid}; skipped")
        self._next_index, self._gap_since = skipped_to, None

    def _probe(self) -> None:
        """ETSI 004 has no status call: an end's health shows in the chunks that arrive."""

    # --- the slave end (a web worker) -----------------------------------------------------------

    def _respond_other(self, op: Any, message: dict[str, Any]) -> dict[str, Any]:
        if self._role != "slave":
            raise BadRequest("this end is the link's master")
        ksid = message.get("key_stream_id")
        if not isinstance(ksid, str) or not 0 < len(ksid) <= 64:
            raise BadRequest("key_stream_id must be a string")
        if op == "open":
            try:
                client = self._client.get()
                _, status, _ = client.open_connect(*self._uris(self._context.kme_id, self._peer), self._qos(), ksid)
                client.get_key(ksid, 0)
            except DeviceFault as fault:
                return {"result": "failed", "kind": fault.kind, "reason": fault.message}
            return {"result": "ok", "status": status}
        raise BadRequest(f"unknown message for the {self.kind} source")

    def _slave_copy(self, message: dict[str, Any]) -> tuple[str, bytes]:
        ksid, first, count = message.get("key_stream_id"), message.get("first_index"), message.get("count")
        integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (first, count))
        if not isinstance(ksid, str) or not integers or first < 0 or not 0 < count <= MAX_CHUNKS_PER_OFFER:
            raise BadRequest("an offer names key_stream_id, first_index and count")
        inbox = self._context.inbox
        held: dict[int, KeyBlock] = {}
        for chunk in inbox.take(self._pushed, self._settings.max_waiting_chunks):
            chunk_ksid, _, index = chunk.block_id.rpartition(":")
            if chunk_ksid == ksid and int(index) >= first:
                held[int(index)] = chunk
        wanted = range(first, first + count)
        complete = all(index in held for index in wanted)
        keep = [held[i] for i in sorted(held) if not complete or i >= wanted.stop]
        if keep:
            inbox.put(self._pushed, keep)
        if not complete:
            raise DeviceFault("not_yet", f"chunks {first}..{wanted.stop - 1} of key stream {ksid} have not all "
                                         f"been pushed here yet")
        return f"{ksid}:{first}", b"".join(held[index].material for index in wanted)
