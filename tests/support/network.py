"""A local network of real qkms node processes for tests, plus views into their Redis."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import httpx

from adapters.etsi014_client import Etsi014Client
from kms.config import load_config
from kms.keys import KeyBlock
from kms.storage.embedded_redis import embedded_url
from kms.storage.redis_client import redis_client
from kms.storage.redis_pool import RedisPoolStore
from kms.storage.redis_store import RedisKeyStore
from kms.sealing import Sealer, load_kek
from qkms.cli import link_plan
from qkms.cli_audit import node_audit_files
from qkms.layout import NodePlan, free_port, write_layout
from qkms.link_status import fetch_link_state, link_manager_line
from qkms.runner import RunningNode, sae_client, start_node, stop_all, wait_for_keys, wait_listening
from tests.support.devices import MockDevicePair

# Efficient detectors, 10 km, a frame of 3e6 pulses per 4 s at each link end: the
# pools fill within seconds without saturating two cores.
FAST_LINK = {"kind": "simulated", "preset": "snspd-illustrative", "length_km": 10,
             "pulses_per_frame": 3_000_000, "frame_interval_s": 4.0}
#: The ML-KEM source of links whose policy uses PQC: 4 KiB blocks, four a second.
FAST_PQC = {"kind": "ml-kem", "kem": "ML-KEM-768", "signature": "ML-DSA-65", "block_bytes": 4096,
            "blocks_per_s": 4}


#: How long a node of a LocalNetwork may take to listen.
START_TIMEOUT_S = 90


class LocalNetwork:
    """Nodes written with ``write_layout`` and run as ``qkms serve`` children; links named
    in ``device_links`` ("A-B" -> ``mock-device`` or ``mock-device-004``) are fed by a
    pair of mock devices instead (``devices[link_id]``), started with the network."""

    def __init__(self, root: Path, saes: dict[str, tuple[str, ...]], links: list[tuple[str, str]], source: dict,
                 device_links: dict[str, str] | None = None, policies: dict[tuple[str, str], str] | None = None,
                 pqc: dict | None = None, sources: dict[tuple[str, str], dict] | None = None, **device_options):
        """``source`` serves every link but those ``sources`` gives their own section;
        ``policies`` by link (default qkd-only); ``pqc`` the PQC source of links that use
        one; ``device_options``: more of ``qkms.device_layout.MockPairPlan``."""
        plans = [NodePlan(kme_id, node_saes, free_port()) for kme_id, node_saes in saes.items()]
        urls = {plan.kme_id: f"https://127.0.0.1:{plan.port}" for plan in plans}
        sources, device_links, policies = sources or {}, device_links or {}, policies or {}

        def section(a: str, b: str) -> dict:
            # A device pair runs its own simulated link (10 km); ``source`` feeds the others.
            return {"length_km": 10} if f"{a}-{b}" in device_links else dict(sources.get((a, b), source))

        link_plans = [replace(link_plan(f"{a}-{b}", (a, b), device_links.get(f"{a}-{b}", "simulated"), section(a, b),
                                        urls, policies.get((a, b), "qkd-only"), **device_options),
                              pqc=dict(pqc or FAST_PQC)) for a, b in links]
        self.root = root
        self.links = link_plans
        self.manifest = write_layout(root, plans, link_plans).to_dict()
        self.running: dict[str, RunningNode] = {}
        self._clients: list[Etsi014Client] = []
        (root / "logs").mkdir(exist_ok=True)
        ca_path = Path(self.manifest["ca"])
        self.devices = {link.link_id: MockDevicePair(root, self._device_entries(link.link_id), ca_path, link.devices,
                                                     root / "logs")
                        for link in link_plans if link.devices is not None}

    def _device_entries(self, link_id: str) -> dict:
        return {"devices": self.manifest["devices"][link_id], "mock_devices": self.manifest["mock_devices"][link_id]}

    def start(self, *kme_ids: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the nodes (all, with the mock devices, if none is named) and wait until
        they listen (up to ``timeout_s`` each: several nodes importing the simulator at
        once on a busy machine take a while); if one does not, stop every node and mock
        device this call started and raise."""
        ids = list(kme_ids or self.manifest["nodes"])
        pairs = [] if kme_ids else list(self.devices.values())
        try:
            for pair in pairs:
                pair.start()
            for kme_id in ids:
                self.running[kme_id] = start_node(kme_id, self.manifest["nodes"][kme_id], self.root / "logs")
            for kme_id in ids:
                wait_listening(self.running[kme_id], timeout_s)
        except BaseException:
            self.stop(*ids)
            for pair in pairs:
                pair.close()
            raise

    def stop(self, *kme_ids: str) -> None:
        stop_all([self.running.pop(k) for k in (kme_ids or list(self.running)) if k in self.running])

    def kill9(self, kme_id: str) -> None:
        node = self.running.pop(kme_id)
        node.process.kill()
        node.process.wait()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.stop()
        for pair in self.devices.values():
            pair.close()

    def client(self, sae_id: str) -> Etsi014Client:
        client = sae_client(self.manifest, sae_id)
        self._clients.append(client)
        return client

    def _open(self, kme_id: str):
        config = load_config(self.manifest["nodes"][kme_id]["config"])
        client = redis_client(embedded_url(config.redis.data_dir))
        return client, Sealer(load_kek(config.kek.file, config.kek.env), kme_id)

    def pools(self, kme_id: str) -> RedisPoolStore:
        """The live pool store of a running node (its embedded Redis, its KEK)."""
        client, sealer = self._open(kme_id)
        return RedisPoolStore(client, sealer, kme_id)

    def inject(self, a: str, b: str, bits: int, block_bytes: int = 1 << 17, first_sequence: int = 10**9) -> None:
        """Put ``bits`` of identical key material into both ends' copy of the lower
        KME_ID's half of link a-b (the half that end sends from), as the link's source
        would, but at once. Sequences start far above the simulated frames', whose
        later blocks are then skipped on that half."""
        owner = min(a, b)
        blocks = [KeyBlock(f"{a}-{b}:injected:{i}", os.urandom(block_bytes), first_sequence + 2 * i)
                  for i in range(-(-bits // (8 * block_bytes)))]
        for holder in (a, b):
            self.pools(holder).add_blocks(f"{a}-{b}", owner, blocks)

    def store(self, kme_id: str) -> RedisKeyStore:
        client, sealer = self._open(kme_id)
        return RedisKeyStore(client, sealer, kme_id)

    def wait_for_keys(self, master: Etsi014Client, slave_sae: str, count: int, timeout_s: float = 90) -> dict:
        """Poll ETSI status until ``count`` keys could go to ``slave_sae``; on a timeout the
        error says what every node reports of its links and ends with its log's tail."""
        try:
            return wait_for_keys(master, slave_sae, count, timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.diagnosis()}") from None

    def diagnosis(self, log_lines: int = 25) -> str:
        """Each running node's link halves (state, bits, reason) and the last lines of its
        log: what a failed wait needs to be explained (neither holds key material)."""
        parts = []
        for kme_id, node in self.running.items():
            try:
                state = fetch_link_state(self.manifest, kme_id)
                halves = [f"  {h.link_id}/{h.owner}: {h.state} {h.available_bits} bits {h.reason}".rstrip()
                          for h in state.halves]
                parts.append(f"node {kme_id} (exit {node.process.poll()}), {link_manager_line(state.link_manager)}:")
                parts.extend(halves)
            except (httpx.HTTPError, OSError) as exc:
                parts.append(f"node {kme_id} (exit {node.process.poll()}): links unreadable ({type(exc).__name__})")
            tail = node.log_path.read_text(errors="replace").splitlines()[-log_lines:]
            parts.extend(f"  | {line}" for line in tail)
        return "\n".join(parts)

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted((self.root / "logs").glob("*.log")))

    def audit_text(self) -> str:
        """Every node's audit trail (its audit file and the rotated ones), as ``qkms audit``
        finds them."""
        return "".join(path.read_text(errors="replace") for paths in node_audit_files(self.root).values()
                       for path in paths)
