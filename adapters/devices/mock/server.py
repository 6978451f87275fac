"""A mock device as a process: TLS servers (device and control), the simulation feed,
the link to the peer device, and faults that take the device down and up again."""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import threading
from typing import Any

import httpx
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from adapters.devices.mock.app import create_control_app, create_device_app
from adapters.devices.mock.config import Address, MockDeviceConfig, TlsFiles
from adapters.devices.mock.faults import FaultSet, parse_fault
from adapters.devices.mock.kme import MockKme, PeerDevice
from adapters.etsi014_client import client_tls_context
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.errors import Unavailable
from kms.pki.tls import server_context
from kms.sources import SourceContext

log = logging.getLogger("qkms.mock_device")

FEED_INTERVAL_S = 0.2
PEER_TIMEOUT_S = 5.0


def server_tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """This device's certificate, client certificates from ``tls.ca`` required, with
    qkms's TLS policy (kms.pki.tls): a device as strict as a node."""
    return server_context(tls.cert, tls.key, tls.ca)


class _Handler(WSGIRequestHandler):
    """HTTP/1.1 keep-alive; hands the client certificate to the app; no access log;
    registers its connection so that ``down`` can cut it."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[PEER_CERT_ENVIRON_KEY] = self.connection.getpeercert(binary_form=True)
        return environ

    def log_request(self, *args) -> None:
        pass


class TlsServer:
    """A threaded HTTPS server for one Flask app that can stop and start again."""

    def __init__(self, address: Address, app, context: ssl.SSLContext):
        self._address, self._app, self._context = address, app, context
        self._server: BaseWSGIServer | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            server = make_server(self._address.host, self._address.port, self._app, threaded=True,
                                 request_handler=_Handler, ssl_context=self._context)
            server.connections = set()
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
            self._server = server

    def stop(self) -> None:
        """Stop listening and cut every open connection."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for connection in list(server.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HttpPeer(PeerDevice):
    """The peer device over mutual TLS, its certificate checked for ``peer_name``."""

    def __init__(self, config: MockDeviceConfig):
        self._http = httpx.Client(base_url=config.peer_url.rstrip("/") + "/mock/v1/peer/", timeout=PEER_TIMEOUT_S,
                                  verify=client_tls_context(config.tls.ca, config.tls.cert, config.tls.key))
        self._extensions = {"sni_hostname": config.peer_name}

    def call(self, what: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            response = self._http.post(what, json=body, extensions=self._extensions)
        except httpx.TransportError as exc:
            raise Unavailable(f"the peer device is unreachable ({type(exc).__name__})") from None
        if response.status_code == 200:
            return None
        if response.status_code == 409:
            return response.json()
        raise Unavailable(f"the peer device refused {what} ({response.status_code})")

    def close(self) -> None:
        self._http.close()


class SimulationFeed:
    """One end of the simulated link (``adapters.qkd_sim``) feeding the device's pools."""

    def __init__(self, config: MockDeviceConfig, kme: MockKme):
        from adapters.qkd_sim.source import SimulatedQkdSource

        context = SourceContext(config.name, config.peer_name, config.link_id)
        self._source = SimulatedQkdSource.from_config(dict(config.simulation), context)
        self._kme = kme
        self._max_frames = config.max_frames
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulation feed", daemon=True)
        self.blocks = 0
        self.bits = 0
        self.running = False

    def start(self) -> None:
        self.running = True
        self._source.start()
        self._thread.start()

    def state(self) -> dict:
        return {"frames": self._frames_done(), "blocks": self.blocks, "bits": self.bits, "running": self.running}

    def _run(self) -> None:
        while not self._stopping.wait(FEED_INTERVAL_S):
            for block in self._source.fetch(1 << 40):
                self._kme.add_block(block)
                self.blocks += 1
                self.bits += 8 * len(block.material)
            if self._max_frames is not None and self._frames_done() >= self._max_frames:
                self._source.stop()
                self.running = False
                return

    def _frames_done(self) -> int:
        metrics = self._source.health().metrics
        return int(metrics.get("frames_ok", 0) + metrics.get("frames_aborted", 0))

    def stop(self) -> None:
        self._stopping.set()
        self._source.stop()
        self.running = False


class MockDevice:
    """A whole mock device: ``start()`` it, ``stop()`` it."""

    def __init__(self, config: MockDeviceConfig, extra_faults: tuple[str, ...] = ()):
        from adapters.devices.mock.qkd004 import KeyStreams, peer004_bp, qkd004_bp

        self.config = config
        self.faults = FaultSet([parse_fault(spec) for spec in (*config.faults, *extra_faults)])
        self._peer = HttpPeer(config)
        self.kme = MockKme(config, self.faults, self._peer)
        self.streams = KeyStreams(config, self.kme, self.faults)
        context = server_tls_context(config.tls)
        device_app = create_device_app(self.kme, self.faults, (qkd004_bp, peer004_bp),
                                       {"qkms.mock.streams": self.streams})
        self.feed = SimulationFeed(config, self.kme)
        self.data = TlsServer(config.listen, device_app, context)
        self.control = TlsServer(config.control_listen,
                                 create_control_app(self.kme, self.faults, self.apply_faults, self.feed.state), context)

    def start(self) -> None:
        self.feed.start()
        self.streams.start()
        self.control.start()
        self.apply_faults()
        log.info("mock device %s (link %s) serving on %s:%d, control on %s:%d; faults: %s", self.config.name,
                 self.config.link_id, self.config.listen.host, self.config.listen.port,
                 self.config.control_listen.host, self.config.control_listen.port,
                 ", ".join(self.faults.active()) or "none")

    def apply_faults(self) -> None:
        """Take the ETSI port down, or bring it up, as the ``down`` fault says."""
        if self.faults.get("down"):
            self.data.stop()
        else:
            self.data.start()

    def stop(self) -> None:
        self.streams.stop()
        self.feed.stop()
        self.data.stop()
        self.control.stop()
        self._peer.close()


def run_mock_device(config: MockDeviceConfig, extra_faults: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM or SIGINT."""
    device = MockDevice(config, extra_faults)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    device.start()
    try:
        stopping.wait()
    finally:
        device.stop()
