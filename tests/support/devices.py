"""Mock QKD device pairs for tests: real ``qkms mock-device`` processes on loopback,
written with the product's own writer (qkms/device_layout.py), always stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from adapters.etsi014_client import Etsi014Client, client_tls_context
from kms.pki import CertificateAuthority
from qkms.device_layout import device_section, plan_mock_pair, write_mock_pair
from qkms.layout import free_port
from qkms.runner import start_mock_device, stop_process, wait_for_port


class MockDevicePair:
    """The two devices of one link; ``start()``/``stop()`` them, set their faults."""

    def __init__(self, root: Path, link_id: str = "KME-A--KME-B", nodes: tuple[str, str] = ("KME-A", "KME-B"),
                 protocol: str = "etsi014", ca: CertificateAuthority | None = None, ca_path: Path | None = None,
                 node_urls: dict[str, str] | None = None, **options):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca = ca or CertificateAuthority.create()
        self.ca_path = ca_path or root / "pki" / "ca.crt"
        if ca is None:
            self.ca.save(self.ca_path, root / "pki" / "ca.key")
        self.plan = plan_mock_pair(link_id, nodes, [free_port() for _ in range(4)], protocol, node_urls, **options)
        self.entries = write_mock_pair(root, self.ca, self.ca_path, self.plan)
        self.processes: dict[str, subprocess.Popen] = {}
        self._clients: list[httpx.Client | Etsi014Client] = []

    def start(self, *kme_ids: str, faults: tuple[str, ...] = ()) -> "MockDevicePair":
        started = kme_ids or tuple(end.kme_id for end in self.plan.ends)
        for kme_id in started:
            entry = self.entries["mock_devices"][kme_id]
            self.processes[kme_id] = start_mock_device(entry["config"], self.root / f"{entry['name']}.log", faults)
        for kme_id in started:
            end = self.plan.end(kme_id)
            wait_for_port("127.0.0.1", end.control_port, 30, self.processes[kme_id])
            if "down" not in faults:
                wait_for_port("127.0.0.1", end.port, 30, self.processes[kme_id])
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
        section = device_section(self.plan, kme_id, self.root / "nodes" / kme_id, self.ca_path)
        node_dir = self.root / "nodes" / kme_id
        return {**section, **{name: str((node_dir / section[name]).resolve()) for name in ("cert", "key", "ca")}}

    def both_ends_section(self) -> dict:
        """One section describing both ends (``ends.<KME_ID>``), without ``kind``."""
        ends = {end.kme_id: {k: v for k, v in self.section(end.kme_id).items() if k not in ("kind", "profile")}
                for end in self.plan.ends}
        return {"profile": self.section(self.plan.ends[0].kme_id)["profile"], "ends": ends}

    def client(self, kme_id: str) -> Etsi014Client:
        """An ETSI 014 client of ``kme_id``'s device, as that node's SAE."""
        entry = self.entries["devices"][kme_id]
        client = Etsi014Client(entry["url"], entry["cert"], entry["key"], entry["ca"], timeout_s=10,
                               server_name=entry["server_name"])
        self._clients.append(client)
        return client

    def control(self, kme_id: str) -> httpx.Client:
        """A client of ``kme_id``'s device's control port, with the operator's certificate."""
        entry = self.entries["mock_devices"][kme_id]
        verify = client_tls_context(self.ca_path, self.root / "devices" / "operator.crt",
                                    self.root / "devices" / "operator.key")
        client = httpx.Client(base_url=entry["control_url"] + "/mock/v1/", verify=verify, timeout=10,
                              headers={}, event_hooks={})
        self._clients.append(client)
        return client

    def set_faults(self, kme_id: str, *specs: str) -> list[str]:
        response = self.control(kme_id).post("faults", json={"set": list(specs)},
                                             extensions={"sni_hostname": self.plan.end(kme_id).device_name})
        assert response.status_code == 200, response.text
        return response.json()["faults"]

    def clear_faults(self, kme_id: str, *names: str) -> list[str]:
        response = self.control(kme_id).post("faults", json={"clear": list(names) or "all"},
                                             extensions={"sni_hostname": self.plan.end(kme_id).device_name})
        assert response.status_code == 200, response.text
        return response.json()["faults"]
