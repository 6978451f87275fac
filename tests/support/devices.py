"""Mock QKD device pairs for tests: real ``qkms mock-device`` processes on loopback,
written with the product's own writer (qkms/device_layout.py), always stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from flask import Flask

from adapters.devices.mock.config import Address, TlsFiles
from adapters.devices.mock.server import TlsServer, server_tls_context
from adapters.etsi014_client import Etsi014Client, client_tls_context
from etsi_api import errors, qkd004_api
from kms.errors import Unauthorized
from kms.keys import KeyBlock
from kms.pki import CertificateAuthority
from kms.sources import KeySource
from qkms.device_layout import MockPairPlan, device_section, plan_mock_pair, write_mock_pair
from qkms.layout import free_port
from qkms.runner import NODE_START_TIMEOUT_S, start_mock_device, stop_process, wait_for_port


class MockDevicePair:
    """The two devices of one link, from the manifest entries that describe them
    (``devices`` and ``mock_devices`` of one link): start, stop, call them, set faults."""

    def __init__(self, root: Path, entries: dict, ca_path: Path, plan: MockPairPlan | None = None,
                 log_dir: Path | None = None, ca: CertificateAuthority | None = None):
        self.root, self.entries, self.ca_path, self.plan, self.ca = root, entries, ca_path, plan, ca
        self.log_dir = log_dir or root
        self.processes: dict[str, subprocess.Popen] = {}
        self._clients: list[httpx.Client | Etsi014Client] = []

    @classmethod
    def write(cls, root: Path, link_id: str = "KME-A--KME-B", nodes: tuple[str, str] = ("KME-A", "KME-B"),
              protocol: str = "etsi014", node_urls: dict[str, str] | None = None, **options) -> "MockDevicePair":
        """A new pair under ``root`` with its own CA."""
        root.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority.create()
        ca_path = root / "pki" / "ca.crt"
        ca.save(ca_path, root / "pki" / "ca.key")
        plan = plan_mock_pair(link_id, nodes, [free_port() for _ in range(4)], protocol, node_urls, **options)
        return cls(root, write_mock_pair(root, ca, ca_path, plan), ca_path, plan, ca=ca)

    @property
    def kme_ids(self) -> list[str]:
        return list(self.entries["devices"])

    def _mock(self, kme_id: str) -> dict:
        return self.entries["mock_devices"][kme_id]

    def start(self, *kme_ids: str, faults: tuple[str, ...] = ()) -> "MockDevicePair":
        started = kme_ids or tuple(self.kme_ids)
        for kme_id in started:
            entry = self._mock(kme_id)
            self.processes[kme_id] = start_mock_device(entry["config"], self.log_dir / f"{entry['name']}.log", faults)
        try:
            for kme_id in started:
                urls = [self._mock(kme_id)["control_url"]] + ([] if "down" in faults else [self._mock(kme_id)["url"]])
                for url in urls:
                    wait_for_port("127.0.0.1", int(url.rsplit(":", 1)[1]), NODE_START_TIMEOUT_S, self.processes[kme_id])
        except BaseException:  # a failed start leaves nothing running
            self.stop(*started)
            raise
        return self

    def stop(self, *kme_ids: str) -> None:
        for kme_id in kme_ids or list(self.processes):
            process = self.processes.pop(kme_id, None)
            if process is not None:
                stop_process(process)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.stop()

    def section(self, kme_id: str) -> dict:
        """``kme_id``'s link source section, paths absolute."""
        node_dir = self.root / "nodes" / kme_id
        section = device_section(self.plan, kme_id, node_dir, self.ca_path)
        return {**section, **{name: str((node_dir / section[name]).resolve()) for name in ("cert", "key", "ca")}}

    def both_ends_section(self) -> dict:
        """One section describing both ends (``ends.<KME_ID>``), without ``kind``."""
        sections = {kme_id: self.section(kme_id) for kme_id in self.kme_ids}
        ends = {kme_id: {k: v for k, v in section.items() if k not in ("kind", "profile")}
                for kme_id, section in sections.items()}
        return {"profile": next(iter(sections.values()))["profile"], "ends": ends}

    def client(self, kme_id: str) -> Etsi014Client:
        """An ETSI 014 client of ``kme_id``'s device, as that node's SAE."""
        entry = self.entries["devices"][kme_id]
        client = Etsi014Client(entry["url"], entry["cert"], entry["key"], entry["ca"], timeout_s=10,
                               server_name=entry["server_name"])
        self._clients.append(client)
        return client

    def control(self, kme_id: str) -> httpx.Client:
        """A client of ``kme_id``'s device's control port, with the operator's certificate."""
        devices_dir = Path(self._mock(kme_id)["config"]).parent.parent
        verify = client_tls_context(self.ca_path, devices_dir / "operator.crt", devices_dir / "operator.key")
        client = httpx.Client(base_url=self._mock(kme_id)["control_url"] + "/mock/v1/", verify=verify, timeout=10)
        self._clients.append(client)
        return client

    def _post_faults(self, kme_id: str, body: dict) -> list[str]:
        response = self.control(kme_id).post("faults", json=body,
                                             extensions={"sni_hostname": self._mock(kme_id)["name"]})
        assert response.status_code == 200, response.text
        return response.json()["faults"]

    def set_faults(self, kme_id: str, *specs: str) -> list[str]:
        return self._post_faults(kme_id, {"set": list(specs)})

    def clear_faults(self, kme_id: str, *names: str) -> list[str]:
        return self._post_faults(kme_id, {"clear": list(names) or "all"})


class _OneEnd:
    """What a node's key-material endpoint asks of its link responders, for one link end."""

    def __init__(self, source: KeySource):
        self._source = source

    def pushed(self, names, block: KeyBlock) -> str:
        if not self._source.accepts_pushes_from(names):
            raise Unauthorized("not this end's device")
        self._source.accept_pushed(block)
        return "link"


class PushReceiver:
    """A node's ETSI 004 key-material endpoint (the node's own blueprint) over mutual TLS,
    alone: what a device pushes goes to ``source`` (one link end: its inbox)."""

    def __init__(self, port: int, ca: CertificateAuthority, ca_path: Path, root: Path, kme_id: str, source: KeySource):
        root.mkdir(parents=True, exist_ok=True)
        ca.issue_node_certificate(kme_id).save(root / f"{kme_id}.crt", root / f"{kme_id}.key")
        app = Flask(f"push-receiver-{kme_id}")
        app.extensions["qkms.responders"] = _OneEnd(source)
        errors.init_app(app)
        app.register_blueprint(qkd004_api.bp)
        tls = TlsFiles(cert=root / f"{kme_id}.crt", key=root / f"{kme_id}.key", ca=ca_path)
        self._server = TlsServer(Address(port=port), app, server_tls_context(tls))

    def __enter__(self) -> "PushReceiver":
        self._server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stop()
