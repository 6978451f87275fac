"""Writing a ready-to-run qkms directory: PKI, KEKs, node configs and a manifest.

    DIR/pki/ca.crt, ca.key, ca.crl (the CA's revocation list; `qkms pki revoke` adds to it)
    DIR/nodes/<KME_ID>/{node.crt,node.key,kek.hex,config.yaml,data/}
    DIR/nodes/<KME_ID>/pqc/{ml-dsa-65.key,ml-dsa-65.pub,peers/<PEER>.pub}   (ends of PQC links)
    DIR/saes/<SAE_ID>.crt, .key
    DIR/manifest.json
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from adapters.pqc.signing import new_key_pair
from kms.config import ROLES_BY_POLICY
from kms.pki import CertificateAuthority
from kms.pki.files import write_atomic
from kms.pki.revocation import issue_crl
from kms.sealing import new_kek_hex
from qkms.device_layout import MockPairPlan, device_section, write_mock_pair


@dataclass(frozen=True)
class NodePlan:
    """One node to write: its KME_ID, its SAEs and its port."""

    kme_id: str
    sae_ids: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class LinkPlan:
    """One link to write: its id, its two nodes, its policy, its QKD source section and
    (for policies that use PQC) its PQC source section; a device-fed link has a pair of
    mock devices instead of a simulated QKD source (``devices``)."""

    link_id: str
    nodes: tuple[str, str]
    source: dict = field(default_factory=dict)
    policy: str = "qkd-only"
    pqc: dict = field(default_factory=lambda: dict(DEMO_PQC_SOURCE))
    devices: MockPairPlan | None = None

    @property
    def uses_qkd(self) -> bool:
        return "qkd" in ROLES_BY_POLICY[self.policy]

    @property
    def uses_pqc(self) -> bool:
        return "pqc" in ROLES_BY_POLICY[self.policy]


#: Default source of links written by ``qkms init``: a simulated decoy-state BB84 link
#: with Toshiba's published 1 GHz system (Lucamarini et al., Opt. Express 21, 24550
#: (2013)) at 25 km, in real time: frames of 5e8 pulses (0.5 s of the device), parameters
#: optimised per frame, ~1.2 Mbit/s of secret key when the CPU keeps up (the link's
#: ``speedup`` says how far it does).
DEMO_LINK_SOURCE = {"kind": "simulated", "preset": "toshiba-2013", "length_km": 25,
                    "pulses_per_frame": 500_000_000}
#: Sources ``qkms init --link-source`` can write, by kind (adapters/quantum_internet):
#: BBM92 over fibre with efficient detectors (a key frame per second); a repeater chain
#: of 8 links with T2 = 1 s memories; trusted-satellite downlinks, one ~7 minute pass a
#: day at the Micius altitude (docs/quantum-internet.md).
LINK_SOURCES = {
    "simulated": {**DEMO_LINK_SOURCE, "length_km": 10.0},
    "entangled": {"kind": "entangled", "length_km": 25, "detector_efficiency": 0.6, "pulse_rate_hz": 1e7},
    "repeater-chain": {"kind": "repeater-chain", "length_km": 500, "segments": 8, "memory_t2_s": 1.0},
    "satellite": {"kind": "satellite"},
}
#: PQC source of links whose policy uses one: ML-KEM-768 signed with ML-DSA-65, a 4 KiB
#: block twice a second (64 kbit/s of link key material per link).
DEMO_PQC_SOURCE = {"kind": "ml-kem", "kem": "ML-KEM-768", "signature": "ML-DSA-65", "block_bytes": 4096,
                   "blocks_per_s": 2}
LINK_POLICIES = tuple(ROLES_BY_POLICY)


#: A fresh layout's (empty) CRL is valid for a year; `qkms pki revoke` and `qkms pki crl`
#: re-issue it (30 days by default) and must be run again before it lapses.
INIT_CRL_VALID_DAYS = 365


@dataclass
class Manifest:
    """Where everything was written; printed by ``qkms init --json``."""

    ca: str
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    saes: dict[str, dict[str, str]] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)
    #: Device-fed links: link -> KME_ID -> how that node reaches its device
    #: (url, sae_id, cert, key, ca, server_name); and the mock devices to run.
    devices: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    mock_devices: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"ca": self.ca, "nodes": self.nodes, "saes": self.saes, "admin": self.admin}
        if self.devices:
            out |= {"devices": self.devices, "mock_devices": self.mock_devices}
        return out


#: Ports this process handed out lately: a layout picks all its ports before any is bound,
#: and the kernel may offer a port it just released again (measured on Linux: about one
#: group of four in 2,000 had a repeat).
_RECENT_PORTS: deque[int] = deque(maxlen=4096)
_RECENT_PORTS_LOCK = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port that was free a moment ago and that this process has not
    handed out among its last few thousand."""
    with _RECENT_PORTS_LOCK:
        while True:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
            if port not in _RECENT_PORTS:
                _RECENT_PORTS.append(port)
                return port


def node_config(plan: NodePlan, plans: list[NodePlan], links: list[LinkPlan]) -> dict:
    """The YAML document of one node (paths relative to the node's directory)."""
    config = {
        "kme_id": plan.kme_id,
        "listen": {"host": "127.0.0.1", "port": plan.port},
        "tls": {"cert": "node.crt", "key": "node.key", "ca": "../../pki/ca.crt", "sae_id_field": "subject_cn",
                "crl": "../../pki/ca.crl"},
        "saes": [{"id": sae_id} for sae_id in plan.sae_ids],
        "kek": {"file": "kek.hex"},
        "redis": {"data_dir": "data"},
        "reservation_ttl_s": 3600,
        "admins": [ADMIN_NAME],
    }
    if len(plans) > 1:
        config["peers"] = [{"kme_id": p.kme_id, "url": f"https://127.0.0.1:{p.port}", "saes": list(p.sae_ids)}
                           for p in plans if p.kme_id != plan.kme_id]
        config["links"] = [_link_config(link, plan) for link in links]
    return config


def _link_config(link: LinkPlan, plan: NodePlan) -> dict:
    entry = {"id": link.link_id, "nodes": list(link.nodes)}
    if link.policy != "qkd-only":
        entry["policy"] = link.policy
    if link.uses_qkd:
        entry["source"] = _link_source(link, plan)
    if link.uses_pqc:
        entry["pqc"] = _link_pqc(link, plan)
    return entry


def _link_source(link: LinkPlan, plan: NodePlan) -> dict:
    """Full source settings at the link's ends; elsewhere only its kind (for routing). A
    simulated source gets an ``eve_file`` (the admin API switches eavesdroppers with it)."""
    if plan.kme_id not in link.nodes:
        return {"kind": link.source["kind"]}
    if link.devices is not None:
        return device_section(link.devices, plan.kme_id, Path("nodes") / plan.kme_id, Path("pki") / "ca.crt")
    eve = {"eve_file": f"eve/{link.link_id}.json"} if link.source.get("kind") == "simulated" else {}
    return {**eve, **link.source, "seed_file": f"links/{link.link_id}.seed"}


def _link_pqc(link: LinkPlan, plan: NodePlan) -> dict:
    """The PQC section at the link's ends (this node's key, the peer's pinned key);
    elsewhere only its kind."""
    if plan.kme_id not in link.nodes:
        return {"kind": link.pqc["kind"]}
    peer = next(n for n in link.nodes if n != plan.kme_id)
    algorithm = _signature(link)
    return {**link.pqc, "signing_key": f"pqc/{algorithm.lower()}.key",
            "peer_public_key": f"pqc/peers/{peer}.{algorithm.lower()}.pub"}


def _signature(link: LinkPlan) -> str:
    return link.pqc.get("signature", "ML-DSA-65")


def write_node(root: Path, ca: CertificateAuthority, plan: NodePlan, manifest: Manifest,
               plans: list[NodePlan], links: list[LinkPlan]) -> Path:
    """Write one node's certificate, KEK and config; return the config path."""
    node_dir = root / "nodes" / plan.kme_id
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca.issue_node_certificate(plan.kme_id).save(node_dir / "node.crt", node_dir / "node.key")
    write_atomic(node_dir / "kek.hex", new_kek_hex().encode() + b"\n", 0o600)
    config_path = node_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(node_config(plan, plans, links), sort_keys=False))
    url = f"https://127.0.0.1:{plan.port}"
    # SKIP's paths (/capabilities, /key, /entropy) sit at the root of the node's origin.
    manifest.nodes[plan.kme_id] = {"config": str(config_path), "url": url, "skip_url": url}
    return config_path


def write_sae(root: Path, ca: CertificateAuthority, sae_id: str, kme_id: str, manifest: Manifest) -> None:
    """Write one SAE's client certificate and key."""
    cert, key = root / "saes" / f"{sae_id}.crt", root / "saes" / f"{sae_id}.key"
    ca.issue_sae_certificate(sae_id).save(cert, key)
    manifest.saes[sae_id] = {"node": kme_id, "cert": str(cert), "key": str(key)}


#: The administrator ``qkms init`` creates and every node of the layout accepts.
ADMIN_NAME = "admin"


def write_admin(root: Path, ca: CertificateAuthority, manifest: Manifest) -> None:
    """Write the administrator's client certificate and key (the admin API's role)."""
    directory = root / "admin"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key = directory / f"{ADMIN_NAME}.crt", directory / f"{ADMIN_NAME}.key"
    ca.issue_admin_certificate(ADMIN_NAME).save(cert, key)
    manifest.admin = {"name": ADMIN_NAME, "cert": str(cert), "key": str(key)}


def write_link_seeds(root: Path, links: list[LinkPlan]) -> None:
    """One shared secret per simulated link, copied into both ends' directories."""
    for link in (link for link in links if link.uses_qkd and link.devices is None):
        seed = os.urandom(32).hex().encode() + b"\n"
        for kme_id in link.nodes:
            write_atomic(root / "nodes" / kme_id / "links" / f"{link.link_id}.seed", seed, 0o600)


def write_pqc_identities(root: Path, links: list[LinkPlan]) -> None:
    """An ML-DSA key pair per node at the end of a PQC link (private key mode 0600), and
    each such link's peer public key pinned in the node's ``pqc/peers/``."""
    public: dict[tuple[str, str], bytes] = {}
    for link in (link for link in links if link.uses_pqc):
        algorithm = _signature(link)
        for kme_id in link.nodes:
            pqc_dir = root / "nodes" / kme_id / "pqc"
            if (kme_id, algorithm) not in public and (pqc_dir / f"{algorithm.lower()}.pub").is_file():
                # a node that already has a key pair (links added later) keeps it: its peers pinned it
                public[kme_id, algorithm] = (pqc_dir / f"{algorithm.lower()}.pub").read_bytes()
            if (kme_id, algorithm) not in public:
                private_pem, public[kme_id, algorithm] = new_key_pair(algorithm)
                write_atomic(pqc_dir / f"{algorithm.lower()}.key", private_pem, 0o600)
                write_atomic(pqc_dir / f"{algorithm.lower()}.pub", public[kme_id, algorithm], 0o644)
        for kme_id, peer in (link.nodes, link.nodes[::-1]):
            write_atomic(root / "nodes" / kme_id / "pqc" / "peers" / f"{peer}.{algorithm.lower()}.pub",
                         public[peer, algorithm], 0o644)


def write_layout(root: Path, plans: list[NodePlan], links: list[LinkPlan] = ()) -> Manifest:
    """Create the CA and every node, link and SAE of ``plans`` under ``root``."""
    root = root.resolve()
    links = list(links)
    (root / "pki").mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = CertificateAuthority.create()
    ca.save(root / "pki" / "ca.crt", root / "pki" / "ca.key")
    issue_crl(ca, root / "pki" / "ca.crl", valid_days=INIT_CRL_VALID_DAYS)
    manifest = Manifest(ca=str(root / "pki" / "ca.crt"))
    write_admin(root, ca, manifest)
    for plan in plans:
        write_node(root, ca, plan, manifest, plans, links)
        for sae_id in plan.sae_ids:
            write_sae(root, ca, sae_id, plan.kme_id, manifest)
    write_link_seeds(root, links)
    write_pqc_identities(root, links)
    for link in (link for link in links if link.devices is not None):
        entries = write_mock_pair(root, ca, root / "pki" / "ca.crt", link.devices)
        manifest.devices[link.link_id] = entries["devices"]
        manifest.mock_devices[link.link_id] = entries["mock_devices"]
    (root / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest
