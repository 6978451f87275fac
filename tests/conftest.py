"""Shared fixtures: real Redis servers, real node processes, ETSI clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from hypothesis import settings

from adapters.etsi014_client import Etsi014Client
from kms.config import load_config
from kms.storage.embedded_redis import EmbeddedRedis, embedded_url
from kms.storage.redis_client import redis_client
from kms.sealing import KEK_SIZE_BYTES
from qkms.layout import NodePlan, free_port, write_layout
from tests.support.backends import Backend, MemoryBackend, RedisBackend
from tests.support.processes import NodeProcess, RedisServerProcess
from tests.support.quiet_bytes import explain_comparison
from tests.support.redis_topologies import ClusterSet, SentinelSet

# Property tests check what is computed, never how fast: on a loaded machine one example
# can be descheduled past Hypothesis's default 200 ms deadline.
settings.register_profile("qkms", deadline=None)
settings.load_profile("qkms")


def pytest_assertrepr_compare(config, op: str, left, right) -> list[str] | None:
    """A failed comparison of byte strings shows sizes and digests, never the bytes
    (tests/support/quiet_bytes.py)."""
    return explain_comparison(op, left, right)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schemathesis gives the test of every API operation its test function's node ID
    (only the item's name holds the operation). pytest-xdist schedules by node ID and
    ran one operation per test; each item's ID ends with its name instead."""
    for item in items:
        parent_id, _, last = item.nodeid.rpartition("::")
        if parent_id and last != item.name:
            item._id = item.parent.id.child(item.name)  # pytest >= 9 has no public setter


@pytest.fixture
def kek() -> bytes:
    """A fresh random key-encryption key."""
    return os.urandom(KEK_SIZE_BYTES)


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def external_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    (tmp_path / "ext-redis").mkdir()
    server = RedisServerProcess(free_port(), tmp_path / "ext-redis").start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "external"])
def redis_url(request) -> str:
    """A URL for each kind of Redis the product supports."""
    server = request.getfixturevalue(f"{request.param}_redis")
    return server.url


REDIS_KINDS = [pytest.param(kind, marks=pytest.mark.integration) for kind in ("embedded", "external")]
REPLICATED_KINDS = [pytest.param(kind, marks=[pytest.mark.integration, pytest.mark.slow])
                    for kind in ("sentinel", "cluster")]


@pytest.fixture(scope="session")
def sentinel_set(tmp_path_factory) -> Iterator[SentinelSet]:
    """A master, a replica and three sentinels, for the whole session (flushed per test)."""
    topology = SentinelSet(tmp_path_factory.mktemp("sentinel"))
    try:
        yield topology.start()
    finally:
        topology.stop()


@pytest.fixture(scope="session")
def cluster_set(tmp_path_factory) -> Iterator[ClusterSet]:
    """Three masters with a replica each, for the whole session (flushed per test)."""
    topology = ClusterSet(tmp_path_factory.mktemp("cluster"))
    try:
        yield topology.start()
    finally:
        topology.stop()


def _open_backend(request, kind: str) -> Backend:
    if kind == "memory":
        return MemoryBackend()
    if kind in ("sentinel", "cluster"):
        topology = request.getfixturevalue(f"{kind}_set")
        topology.flush()
        return RedisBackend(kind, topology.settings())
    return RedisBackend(kind, request.getfixturevalue(f"{kind}_redis").url)


@pytest.fixture(params=[pytest.param("memory"), *REDIS_KINDS, *REPLICATED_KINDS])
def backend(request) -> Iterator[Backend]:
    """Every storage backend: the in-memory twins (unit tier), both kinds of single Redis
    (integration tier) and Redis Sentinel and Cluster (slow tier), all real servers."""
    opened = _open_backend(request, request.param)
    yield opened
    opened.close()


@pytest.fixture(params=REDIS_KINDS)
def redis_backend(request) -> Iterator[RedisBackend]:
    """The Redis backends only, for what only Redis has (data at rest, TTLs, processes)."""
    opened = _open_backend(request, request.param)
    yield opened
    opened.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the same Redis, to look at what is really stored."""
    client = redis_client(redis_url)
    yield client
    client.close()


class SingleNode:
    """A written single-node layout plus its running ``qkms serve`` process."""

    def __init__(self, root: Path, saes: tuple[str, ...], config_overrides: dict | None = None):
        self.root = root
        self.manifest = write_layout(root, [NodePlan("KME-1", saes, free_port())]).to_dict()
        node = self.manifest["nodes"]["KME-1"]
        self.config_path = Path(node["config"])
        self.url = node["url"]
        if config_overrides:
            self.override(config_overrides)
        port = int(self.url.rsplit(":", 1)[1])
        self.process = NodeProcess(self.config_path, port, root / "node.log")
        self._clients: list[Etsi014Client] = []

    def override(self, updates: dict) -> None:
        data = yaml.safe_load(self.config_path.read_text())
        for key, value in updates.items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)
            else:
                data[key] = value
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    def client(self, sae_id: str) -> Etsi014Client:
        sae = self.manifest["saes"][sae_id]
        client = Etsi014Client(self.url, sae["cert"], sae["key"], self.manifest["ca"])
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()

    def requests_in_progress(self, sae_id: str) -> int:
        """How many of ``sae_id``'s requests the node counts as in progress (with
        ``limits.concurrent_requests_per_sae`` set): the tickets in its admission set
        (layout: kms/storage/redis_admission.py)."""
        config = load_config(self.config_path)
        client = redis_client(embedded_url(config.redis.data_dir))
        try:
            return client.zcard(f"qkms:{{{config.kme_id}}}:adm:sae:{sae_id}:busy")
        finally:
            client.close()


@pytest.fixture
def make_node(tmp_path: Path):
    """Factory: write a single-node layout and start it; everything is stopped afterwards."""
    nodes: list[SingleNode] = []

    def factory(saes=("sae-1", "sae-2", "sae-3"), config_overrides=None, start=True) -> SingleNode:
        node = SingleNode(tmp_path / f"net{len(nodes)}", tuple(saes), config_overrides)
        nodes.append(node)
        if start:
            node.process.start()
        return node

    yield factory
    for node in nodes:
        node.close_clients()
        node.process.stop()


@pytest.fixture
def softhsm(tmp_path, monkeypatch):
    """A SoftHSM2 token of this test's own (tests/support/softhsm.py); this process, and
    the processes it starts, pointed at it; every PKCS#11 session forgotten after."""
    from kms.hsm import reopen_all
    from tests.support.softhsm import make_softhsm, point_this_process_at

    yield point_this_process_at(make_softhsm(tmp_path), monkeypatch)
    reopen_all()
