"""One node's app in process with monitoring on the in-memory storage twins, and the
certificates of every kind of caller (administrator, metrics scraper, SAE, node)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from flask import Flask

from etsi_api.app import create_app
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from etsi_api.monitoring import Monitoring
from kms.config import NodeConfig, parse_config
from kms.node import assemble_node
from kms.pki import CertificateAuthority
from kms.storage import Storage, open_memory_storage
from kms.storage.memory_db import MemoryDatabase
from kms.storage.memory_telemetry import MemoryTelemetryStore

CONFIG = parse_config({
    "kme_id": "A", "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"}, "kek": {"file": "kek.hex"},
    "saes": [{"id": "sae-a"}, {"id": "sae-a2"}], "admins": ["ops"], "metrics_scrapers": ["prometheus"],
    "peers": [{"kme_id": "B", "url": "https://127.0.0.1:9", "saes": ["sae-b"]},
              {"kme_id": "C", "url": "https://127.0.0.1:10", "saes": ["sae-c"]}],
    "links": [{"id": "A-B", "nodes": ["A", "B"], "source": {"kind": "simulated", "preset": "snspd-illustrative"}},
              {"id": "B-C", "nodes": ["B", "C"], "source": {"kind": "simulated"}}],
})


@dataclass
class MonitoredNode:
    config: NodeConfig
    app: Flask
    storage: Storage
    telemetry: MemoryTelemetryStore
    certs: dict[str, bytes]

    def get(self, path: str, caller: str | None = "ops", method: str = "GET", **kwargs):
        environ = {PEER_CERT_ENVIRON_KEY: self.certs[caller]} if caller else {}
        return self.app.test_client().open(path, method=method, environ_base=environ, **kwargs)


def monitored_node() -> MonitoredNode:
    database = MemoryDatabase()
    storage = open_memory_storage(CONFIG.kme_id, database)
    telemetry = MemoryTelemetryStore(database, CONFIG.kme_id)
    node = assemble_node(CONFIG, storage)
    app = create_app(CONFIG, node.service, storage.store,
                     monitoring=Monitoring(storage.board, storage.pools, telemetry))
    ca = CertificateAuthority.create("test CA")
    issued = {"ops": ca.issue_admin_certificate("ops"), "prometheus": ca.issue_admin_certificate("prometheus"),
              "intruder": ca.issue_admin_certificate("intruder"), "sae-a": ca.issue_sae_certificate("sae-a"),
              "sae-a2": ca.issue_sae_certificate("sae-a2"), "A": ca.issue_node_certificate("A")}
    certs = {name: i.certificate.public_bytes(serialization.Encoding.DER) for name, i in issued.items()}
    return MonitoredNode(CONFIG, app, storage, telemetry, certs)
