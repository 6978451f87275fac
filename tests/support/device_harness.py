"""Both ends of a device-fed link in one process: two mock ETSI 014 devices (their real
Flask apps, reached through ``httpx.WSGITransport``), the two link-end sources, a KM
channel that is a direct call, in-memory inboxes and a clock the test steps. Nothing
listens on a port; the pull protocol, the device calls and the faults are the real ones."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography import x509

from adapters.devices.device014 import HttpDevice014
from adapters.devices.mock.app import create_device_app
from adapters.devices.mock.config import MockDeviceConfig
from adapters.devices.mock.faults import FaultSet, parse_fault
from adapters.devices.mock.kme import MockKme, PeerDevice
from adapters.devices.pull_source import Etsi014DeviceSource
from adapters.devices.settings import parse_settings, resolve_role
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.errors import QkmsError, Unavailable
from kms.keys import KeyBlock
from kms.pki import CertificateAuthority
from kms.sources import LinkChannel, SourceContext
from kms.storage import open_memory_storage

KME_A, KME_B = "KME-A", "KME-B"
LINK_ID = "KME-A--KME-B"
DEVICES = {KME_A: "qkd-a", KME_B: "qkd-b"}
SAES = {KME_A: "CONSA", KME_B: "CONSB"}


class SteppedClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class DirectPeer(PeerDevice):
    """Device to device as a direct call (JSON round trip, as on the wire)."""

    def __init__(self) -> None:
        self.other: MockKme | None = None

    def call(self, what: str, body: dict[str, Any]) -> dict[str, Any] | None:
        assert what == "reserve"
        return self.other.hold_for_peer(json.loads(json.dumps(body)))


class DirectChannel(LinkChannel):
    """The KM channel as a direct call into the other end's responder; records what it carried."""

    def __init__(self, responder) -> None:
        self.responder = responder
        self.transcript: list[str] = []
        self.broken = False

    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.broken:
            raise Unavailable("peer KME-B unreachable (ConnectError)")
        self.transcript.append(json.dumps(message))
        try:
            reply = self.responder.respond(json.loads(self.transcript[-1]))
        except QkmsError as exc:
            raise Unavailable(f"peer answered 400: {exc.message}") from None
        self.transcript.append(json.dumps(reply))
        return json.loads(self.transcript[-1])


class CountingTransport(httpx.BaseTransport):
    """A WSGI transport that presents a client certificate and counts requests by path end."""

    def __init__(self, app, cert_der: bytes) -> None:
        self._inner = httpx.WSGITransport(app=lambda environ, start: app({**environ, PEER_CERT_ENVIRON_KEY: cert_der},
                                                                          start))
        self.calls: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path.rsplit("/", 1)[-1]))
        return self._inner.handle_request(request)


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


@dataclass
class DeviceLink:
    """The whole link: devices, their faults, both ends' sources (``master``, ``slave``),
    the slave's responder (as a web worker holds it) and the clock."""

    root: Path
    clock: SteppedClock
    kmes: dict[str, MockKme]
    faults: dict[str, FaultSet]
    transports: dict[str, CountingTransport]
    master: Etsi014DeviceSource
    slave: Etsi014DeviceSource
    responder: Etsi014DeviceSource
    channel: DirectChannel
    inboxes: dict[str, Any]
    sequence: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(2024))

    def feed(self, blocks: int = 1, size_bytes: int = 4096) -> None:
        """Identical blocks of the simulated link into both devices (alternating owners)."""
        for _ in range(blocks):
            material = self.rng.integers(0, 256, size_bytes, dtype=np.uint8).tobytes()
            block = KeyBlock(f"{LINK_ID}:{self.sequence}", material, self.sequence)
            for kme in self.kmes.values():
                kme.add_block(block)
            self.sequence += 1

    def set_fault(self, kme_id: str, spec: str) -> None:
        self.faults[kme_id].set(parse_fault(spec))

    def clear_faults(self) -> None:
        for faults in self.faults.values():
            faults.clear()

    def fetch_both(self) -> tuple[list[KeyBlock], list[KeyBlock]]:
        return self.master.fetch(1 << 30), self.slave.fetch(1 << 30)


def digest(block: KeyBlock) -> str:
    return hashlib.sha256(block.material).hexdigest()


def build_device_link(root: Path, limits: dict | None = None, **settings: Any) -> DeviceLink:
    """Both ends of LINK_ID over two in-process mock devices (``limits`` of their status);
    ``settings`` override the sources' section (profile etsi014-generic) at both ends."""
    ca = CertificateAuthority.create()
    ca.save(root / "ca.crt", root / "ca.key")
    clock = SteppedClock()
    peers = {kme_id: DirectPeer() for kme_id in DEVICES}
    faults = {kme_id: FaultSet() for kme_id in DEVICES}
    kmes, apps = {}, {}
    for kme_id, name in DEVICES.items():
        other = KME_B if kme_id == KME_A else KME_A
        ca.issue_sae_certificate(SAES[kme_id]).save(root / f"{kme_id}.crt", root / f"{kme_id}.key")
        config = MockDeviceConfig(name=name, peer_name=DEVICES[other], link_id=LINK_ID,
                                  listen={"port": 0}, control_listen={"port": 0},
                                  tls={"cert": "x", "key": "x", "ca": "x"}, peer_url="https://127.0.0.1:9",
                                  saes=[{"id": SAES[kme_id]}], peer_saes=[SAES[other]], simulation={},
                                  limits=limits or {})
        kmes[kme_id] = MockKme(config, faults[kme_id], peers[kme_id])
        apps[kme_id] = create_device_app(kmes[kme_id], faults[kme_id])
    peers[KME_A].other, peers[KME_B].other = kmes[KME_B], kmes[KME_A]
    transports = {kme_id: CountingTransport(apps[kme_id], _der(root / f"{kme_id}.crt")) for kme_id in DEVICES}
    inboxes = {kme_id: open_memory_storage(kme_id).inbox for kme_id in DEVICES}

    def source(kme_id: str, channel: LinkChannel | None = None) -> Etsi014DeviceSource:
        other = KME_B if kme_id == KME_A else KME_A
        section = {"profile": "etsi014-generic", "url": f"https://{DEVICES[kme_id]}", "sae_id": SAES[kme_id],
                   "peer_sae_id": SAES[other], "cert": str(root / f"{kme_id}.crt"), "key": str(root / f"{kme_id}.key"),
                   "ca": str(root / "ca.crt"), **settings}
        context = SourceContext(kme_id, other, LINK_ID, str(root), channel=channel, inbox=inboxes[kme_id])
        parsed = parse_settings(section, context, "etsi014", "qkd-device", "etsi014-generic")
        return Etsi014DeviceSource(parsed, context, resolve_role(parsed, context),
                                   lambda: HttpDevice014(parsed, transport=transports[kme_id]), clock=clock)

    responder = source(KME_B)
    channel = DirectChannel(responder)
    return DeviceLink(root, clock, kmes, faults, transports, source(KME_A, channel), source(KME_B), responder,
                      channel, inboxes)
