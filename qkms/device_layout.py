"""Writing device-fed links: a pair of mock QKD devices per link, and each node's way to
its end of the pair (``qkms init --link-source mock-device``, docs/devices.md).

    DIR/devices/<link>/<device>.{crt,key,yaml}   a device's certificate and config
    DIR/devices/<link>/link.seed                 the devices' shared simulation seed
    DIR/devices/operator.{crt,key}               the control ports' client certificate
    DIR/nodes/<KME_ID>/devices/<link>.{crt,key}  the node's certificate as its device's SAE

A node reaches its device at ``url`` as SAE ``sae_id``; its link source section says so
(``device_section``), and the manifest's ``devices`` lists it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from adapters.etsi014_client import client_tls_context

from kms.pki import CertificateAuthority
from kms.pki.files import write_atomic

OPERATOR_NAME = "qkms-operator"
#: The simulated link inside each pair of mock devices: efficient detectors, 10 km,
#: a frame of 3e6 pulses every 2 s at each device (30-45 kbit per frame).
MOCK_SIMULATION = {"preset": "snspd-illustrative", "length_km": 10, "pulses_per_frame": 3_000_000,
                   "frame_interval_s": 2.0}
KINDS = {"etsi014": "qkd-device", "etsi004": "qkd-device-004"}
PROFILES = {"etsi014": "etsi014-generic", "etsi004": "etsi004-push"}
#: The KMS endpoint a device pushes key material to (the AIT API's KMS path).
KEY_MATERIAL_PATH = "/api/v1/qkd/etsi004/key-material"


@dataclass(frozen=True)
class DeviceEnd:
    """One node's end of a device pair: the node, its device, and how they meet."""

    kme_id: str
    device_name: str
    sae_id: str
    port: int
    control_port: int
    node_url: str = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def control_url(self) -> str:
        return f"https://127.0.0.1:{self.control_port}"


@dataclass(frozen=True)
class MockPairPlan:
    """The mock device pair of one link."""

    link_id: str
    ends: tuple[DeviceEnd, DeviceEnd]
    protocol: str = "etsi014"
    simulation: dict = field(default_factory=lambda: dict(MOCK_SIMULATION))
    limits: dict = field(default_factory=dict)
    faults: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: More settings of the nodes' link source sections (timeouts, health window...).
    source_settings: dict = field(default_factory=dict)

    def end(self, kme_id: str) -> DeviceEnd:
        return next(end for end in self.ends if end.kme_id == kme_id)

    def other(self, kme_id: str) -> DeviceEnd:
        return next(end for end in self.ends if end.kme_id != kme_id)


def device_name(link_id: str, kme_id: str) -> str:
    """A DNS name for ``kme_id``'s device on ``link_id`` (it is the device certificate's name)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"qkd-{link_id}-{kme_id}".lower()).strip("-")[:63]


def plan_mock_pair(link_id: str, nodes: tuple[str, str], ports: list[int], protocol: str = "etsi014",
                   node_urls: dict[str, str] | None = None, **options) -> MockPairPlan:
    """A pair for ``link_id``; ``ports`` gives four free ports (device and control of each)."""
    ends = tuple(DeviceEnd(kme_id, device_name(link_id, kme_id), f"kms-{kme_id}"[:64], ports[2 * i], ports[2 * i + 1],
                           (node_urls or {}).get(kme_id, "")) for i, kme_id in enumerate(nodes))
    return MockPairPlan(link_id, ends, protocol, **options)


def device_section(plan: MockPairPlan, kme_id: str, node_dir: Path, ca: Path) -> dict:
    """The link source section of ``kme_id``'s node: its device, its credentials."""
    end, other = plan.end(kme_id), plan.other(kme_id)
    section = {"kind": KINDS[plan.protocol], "profile": PROFILES[plan.protocol], "url": end.url,
               "cert": f"devices/{plan.link_id}.crt", "key": f"devices/{plan.link_id}.key",
               "ca": os.path.relpath(ca, node_dir), "server_name": end.device_name}
    if plan.protocol == "etsi014":
        section |= {"sae_id": end.sae_id, "peer_sae_id": other.sae_id}
    return section | plan.source_settings


def write_mock_pair(root: Path, ca: CertificateAuthority, ca_path: Path, plan: MockPairPlan) -> dict:
    """Write the pair's certificates, seed and configs, and each node's device
    credentials; returns ``{"devices": {kme_id: ...}, "mock_devices": {kme_id: ...}}``
    (the manifest's entries for this link)."""
    pair_dir = root / "devices" / plan.link_id
    pair_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_operator(root, ca)
    write_atomic(pair_dir / "link.seed", os.urandom(32).hex().encode() + b"\n", 0o600)
    devices, mocks = {}, {}
    for end in plan.ends:
        other = plan.other(end.kme_id)
        ca.issue_device_certificate(end.device_name).save(pair_dir / f"{end.device_name}.crt",
                                                         pair_dir / f"{end.device_name}.key")
        node_dir = root / "nodes" / end.kme_id
        cert, key = node_dir / "devices" / f"{plan.link_id}.crt", node_dir / "devices" / f"{plan.link_id}.key"
        ca.issue_sae_certificate(end.sae_id).save(cert, key)
        config = pair_dir / f"{end.device_name}.yaml"
        config.write_text(yaml.safe_dump(_mock_config(plan, end, other, ca_path), sort_keys=False))
        devices[end.kme_id] = {"url": end.url, "sae_id": end.sae_id, "cert": str(cert), "key": str(key),
                               "ca": str(ca_path), "server_name": end.device_name}
        mocks[end.kme_id] = {"config": str(config), "url": end.url, "control_url": end.control_url,
                             "name": end.device_name}
    return {"devices": devices, "mock_devices": mocks}


def _write_operator(root: Path, ca: CertificateAuthority) -> None:
    cert, key = root / "devices" / "operator.crt", root / "devices" / "operator.key"
    if not cert.exists():
        ca.issue_sae_certificate(OPERATOR_NAME).save(cert, key)


def _mock_config(plan: MockPairPlan, end: DeviceEnd, other: DeviceEnd, ca_path: Path) -> dict:
    config = {
        "name": end.device_name, "peer_name": other.device_name, "link_id": plan.link_id,
        "listen": {"host": "127.0.0.1", "port": end.port},
        "control_listen": {"host": "127.0.0.1", "port": end.control_port},
        "tls": {"cert": f"{end.device_name}.crt", "key": f"{end.device_name}.key", "ca": str(ca_path)},
        "peer_url": other.url,
        "saes": [{"id": end.sae_id}], "peer_saes": [other.sae_id],
        "control_identities": [OPERATOR_NAME],
        "simulation": {**plan.simulation, "seed_file": "link.seed"},
    }
    if plan.limits:
        config["limits"] = dict(plan.limits)
    if plan.protocol == "etsi004":
        config["push_url"] = end.node_url + KEY_MATERIAL_PATH
    if plan.faults.get(end.kme_id):
        config["faults"] = list(plan.faults[end.kme_id])
    return config


def change_mock_faults(root: Path, entry: dict, set_faults: list[str] = (), clear: list[str] | str = ()) -> list[str]:
    """Set or clear faults of the running mock device ``entry`` (its ``mock_devices``
    manifest entry) through its control port, as the operator; returns those in force."""
    verify = client_tls_context(root / "pki" / "ca.crt", root / "devices" / "operator.crt",
                                root / "devices" / "operator.key")
    with httpx.Client(verify=verify, timeout=10) as client:
        body = {"set": list(set_faults), "clear": clear if isinstance(clear, str) else list(clear)}
        response = client.post(entry["control_url"] + "/mock/v1/faults", json=body,
                               extensions={"sni_hostname": entry["name"]})
    response.raise_for_status()
    return response.json()["faults"]
