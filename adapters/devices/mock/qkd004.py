"""The mock device's ETSI GS QKD 004 push mode (the AIT API, ``etsi_api/qkd004_openapi.yaml``).

A KMS opens a key stream (``POST /api/v1/kms/etsi004/open-connect``); the device that
assigned its key_stream_id (the *initiator*) tells its peer device, and the other KMS
opens the same stream at its device. After a KMS's ``GET .../get-key`` the device pushes
chunks ``POST <push_url>`` (``{status, index, key_buffer, metadata}``, expecting 201):
the initiator carves each chunk from its pool half and has the peer device take the same
segments, so chunk ``index`` of a stream holds the same bits at both devices. ``PUT
.../close`` ends the stream at both. Pushes are paced by the stream's ``qos.max_bps``.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from flask import Blueprint, current_app, jsonify, request

from adapters.devices.mock.app import caller_name, require_peer_device
from adapters.devices.mock.config import MockDeviceConfig
from adapters.devices.mock.faults import FaultSet
from adapters.devices.mock.kme import MockKme
from adapters.devices.status004 import STATUSES
from adapters.etsi014_client import client_tls_context
from etsi_api.parsing import parse_json_object
from kms.errors import BadRequest, QkmsError, Unauthorized
from kms.pools import Segment

log = logging.getLogger("qkms.mock_device.qkd004")

DEVICE_PREFIX = "/api/v1/kms/etsi004"
#: The key unit the device's QoS deals in: chunks are whole multiples of it.
CHUNK_UNIT_BYTES = 32
MAX_CHUNK_BYTES = 1 << 16
#: Push pace without a max_bps, and how many chunks a device keeps waiting for its KMS.
DEFAULT_PUSHES_PER_S = 20.0
MAX_PENDING_CHUNKS = 4096
PUSH_TIMEOUT_S = 5.0

qkd004_bp = Blueprint("qkd004", __name__, url_prefix=DEVICE_PREFIX)
peer004_bp = Blueprint("mock_peer004", __name__, url_prefix="/mock/v1/peer/qkd004")


@dataclass
class Stream:
    """One key stream at this device."""

    ksid: str
    chunk_bytes: int
    max_bps: int | None
    initiator: bool
    opened_here: bool = False
    peer_opened: bool = False
    next_index: int | None = None
    pending: deque = field(default_factory=deque)
    next_push_at: float = 0.0


class StatusAnswer(QkmsError):
    """An ETSI 004 failure: answered with the AIT HTTP code of ``code`` and ``body``."""

    def __init__(self, code: int, extra: dict | None = None):
        super().__init__(f"ETSI 004 status {code}")
        self.code = code
        self.extra = extra or {}


class KeyStreams:
    """The device's key streams and the thread that pushes their chunks."""

    def __init__(self, config: MockDeviceConfig, kme: MockKme, faults: FaultSet,
                 transport: httpx.BaseTransport | None = None):
        """``transport`` stands in for the network to the KMS (tests)."""
        self._config, self._kme, self._faults = config, kme, faults
        self._streams: dict[str, Stream] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qkd004 pusher", daemon=True)
        self._transport = transport
        self._http: httpx.Client | None = None

    # --- the KMS's calls ----------------------------------------------------------------------

    def open_connect(self, body: dict[str, Any]) -> dict[str, Any]:
        self._forced("open-status")
        qos = body.get("qos")
        if not isinstance(body.get("source"), str) or not isinstance(body.get("destination"), str) \
                or not isinstance(qos, dict):
            raise BadRequest("open-connect needs source, destination and qos")
        chunk_bytes = qos.get("key_chunk_size") or CHUNK_UNIT_BYTES
        if not isinstance(chunk_bytes, int) or chunk_bytes % CHUNK_UNIT_BYTES or not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
            raise StatusAnswer(7, {"qos": {**qos, "key_chunk_size": CHUNK_UNIT_BYTES}})
        max_bps = qos.get("max_bps") if isinstance(qos.get("max_bps"), int) and qos.get("max_bps") > 0 else None
        ksid = body.get("key_stream_id")
        with self._lock:
            stream = self._streams.get(ksid) if ksid else None
            if stream is not None and stream.opened_here:
                raise StatusAnswer(5)
            if stream is None:
                ksid = ksid or str(uuid.uuid4())
                stream = self._streams[ksid] = Stream(ksid, chunk_bytes, max_bps, initiator=True)
                announce = True
            else:
                announce = False
            stream.opened_here = True
        self._peer_call("stream", {"key_stream_id": ksid, "event": "announce" if announce else "opened",
                                   "chunk_bytes": chunk_bytes, "max_bps": max_bps})
        status = 0 if stream.peer_opened else 1
        return {"source": body["source"], "destination": body["destination"], "key_stream_id": ksid,
                "qos": {**qos, "key_chunk_size": chunk_bytes}, "status": status}

    def get_key(self, body: dict[str, Any]) -> dict[str, Any]:
        self._forced("get-key-status")
        stream = self._stream(body.get("key_stream_id"))
        index = body.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**32:
            raise BadRequest("index must be a uint32")
        if not stream.peer_opened:
            raise StatusAnswer(3)
        with self._lock:
            if stream.next_index is None or index > stream.next_index:
                stream.next_index = index
        return {"status": 0}

    def close(self, body: dict[str, Any]) -> None:
        stream = self._stream(body.get("key_stream_id"))
        with self._lock:
            self._streams.pop(stream.ksid, None)
        self._peer_call("stream", {"key_stream_id": stream.ksid, "event": "closed"})

    def _stream(self, ksid: Any) -> Stream:
        with self._lock:
            stream = self._streams.get(ksid) if isinstance(ksid, str) else None
        if stream is None or not stream.opened_here:
            raise StatusAnswer(4)
        return stream

    def _forced(self, name: str) -> None:
        fault = self._faults.get(name)
        if fault is not None and int(fault.params["status"]) not in (0, 1):
            raise StatusAnswer(int(fault.params["status"]))

    # --- the peer device's calls --------------------------------------------------------------

    def peer_stream(self, body: dict[str, Any]) -> None:
        ksid, event = body["key_stream_id"], body["event"]
        with self._lock:
            if event == "announce":
                # The initiator announces a stream it has opened: its side is connected.
                self._streams.setdefault(ksid, Stream(ksid, int(body["chunk_bytes"]), body.get("max_bps"), False,
                                                      peer_opened=True))
            elif event == "opened" and ksid in self._streams:
                self._streams[ksid].peer_opened = True
            elif event == "closed" and ksid in self._streams:
                self._streams[ksid].peer_opened = False

    def peer_chunk(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The initiator carved chunk ``index``: take the same bits, queue them for pushing."""
        with self._lock:
            stream = self._streams.get(body["key_stream_id"])
        if stream is None:
            return {"head": None}
        segments = [Segment.from_list(item) for item in body["segments"]]
        owner = body.get("owner", self._config.peer_name)
        try:
            (material,) = self._kme.take_segments(owner, [segments])
        except QkmsError:
            return {"head": self._kme.half_head(owner)}
        with self._lock:
            stream.pending.append((int(body["index"]), material))
            while len(stream.pending) > MAX_PENDING_CHUNKS:
                stream.pending.popleft()
        return None

    # --- pushing ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._config.push_url:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._http is not None:
            self._http.close()

    def _run(self) -> None:
        while not self._stopping.wait(1.0 / DEFAULT_PUSHES_PER_S):
            self.push_once()

    def push_once(self) -> None:
        """Push the next chunk of every stream its KMS asked keys of (the pusher's tick)."""
        if self._faults.get("down"):
            return
        now = time.monotonic()
        with self._lock:
            streams = [s for s in self._streams.values()
                       if s.opened_here and s.peer_opened and s.next_index is not None and s.next_push_at <= now]
        for stream in streams:
            if stream.max_bps:
                stream.next_push_at = now + 8 * stream.chunk_bytes / stream.max_bps
            try:
                self._push_next(stream)
            except (QkmsError, httpx.HTTPError) as exc:
                log.warning("stream %s: push failed: %s", stream.ksid, exc)

    def _push_next(self, stream: Stream) -> None:
        if stream.initiator:
            carved = self._kme.carve_chunk(stream.chunk_bytes)
            if carved is None:
                return
            owner, segments, material = carved
            refusal = self._peer_call("chunk", {"key_stream_id": stream.ksid, "index": stream.next_index,
                                                "owner": owner, "segments": [s.to_list() for s in segments]})
            if refusal is not None:
                return
            index = stream.next_index
        else:
            with self._lock:
                while stream.pending and stream.pending[0][0] < (stream.next_index or 0):
                    stream.pending.popleft()
                if not stream.pending:
                    return
                index, material = stream.pending.popleft()
        self._push(stream, index, material)
        stream.next_index = index + 1

    def _push(self, stream: Stream, index: int, material: bytes) -> None:
        if self._faults.get("different-bytes"):
            material = bytes([material[0] ^ 0x80]) + material[1:]
        if self._faults.get("wrong-length"):
            material = material[:-1]
        body = {"status": 0, "index": index, "key_buffer": base64.b64encode(material).decode(),
                "metadata": {"size": 57, "buffer": {"key_stream_id": stream.ksid}}}
        response = self._client().post(self._config.push_url, json=body, extensions=self._push_extensions())
        if response.status_code != 201:
            raise BadRequest(f"the KMS answered {response.status_code} to key-material")

    def _client(self) -> httpx.Client:
        if self._http is None and self._transport is not None:
            self._http = httpx.Client(transport=self._transport, timeout=PUSH_TIMEOUT_S)
        if self._http is None:
            tls = self._config.tls
            self._http = httpx.Client(verify=client_tls_context(tls.ca, tls.cert, tls.key), timeout=PUSH_TIMEOUT_S)
        return self._http

    def _push_extensions(self) -> dict:
        name = self._config.push_server_name
        return {"sni_hostname": name} if name else {}

    def _peer_call(self, what: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._kme.peer.call(f"qkd004/{what}", body)


def _streams() -> KeyStreams:
    return current_app.extensions["qkms.mock.streams"]


def _json_body() -> dict[str, Any]:
    return parse_json_object(request.get_data(cache=False), required=True)


def _kms() -> None:
    if current_app.extensions["qkms.service"].sae_for_identity(caller_name()) is None:
        raise Unauthorized("only this device's KMS may use its ETSI 004 interface")


@qkd004_bp.errorhandler(StatusAnswer)
def _status_answer(error: StatusAnswer):
    return jsonify({"status": error.code, **error.extra}), STATUSES[error.code].http_status


@qkd004_bp.post("/open-connect")
def open_connect():
    _kms()
    return jsonify(_streams().open_connect(_json_body())), 201


@qkd004_bp.get("/get-key")
def get_key():
    _kms()
    return jsonify(_streams().get_key(_json_body())), 205


@qkd004_bp.put("/close")
def close():
    _kms()
    _streams().close(_json_body())
    return "", 204


@peer004_bp.post("/stream")
def peer_stream():
    require_peer_device()
    try:
        _streams().peer_stream(_json_body())
    except (KeyError, TypeError, ValueError):
        raise BadRequest("malformed stream event") from None
    return jsonify({"result": "noted"})


@peer004_bp.post("/chunk")
def peer_chunk():
    require_peer_device()
    try:
        refusal = _streams().peer_chunk(_json_body())
    except (KeyError, TypeError, ValueError):
        raise BadRequest("malformed chunk") from None
    if refusal is not None:
        return jsonify({"message": "chunk not held here", **refusal}), 409
    return jsonify({"result": "held"})
