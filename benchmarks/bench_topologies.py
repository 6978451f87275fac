"""The deployments the bench report measures ETSI round trips on, as context managers
that start every process they need on loopback and stop it on the way out:

- ``one_node``: one ``qkms serve`` with ``workers`` gevent workers on its embedded Redis;
- ``replicas``: ``count`` ``qkms serve`` replicas of one node (``workers`` each) sharing
  one Debian redis-server, behind HAProxy (mode tcp, TLS passed through);
- ``node_on_store``: one node on a Debian redis-server (``redis``), a Sentinel set
  (master, replica, three sentinels) or a Cluster (three masters with a replica each).

Each yields a ``Target``: the manifest whose node URL the SAEs use and the pids whose
process trees are the node (for its CPU time; external Redis servers are not counted).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_etsi_roundtrip import configure_node, measure, one_node_layout
from qkms.layout import free_port
from tests.support.haproxy import LoadBalancer
from tests.support.processes import NodeProcess, RedisServerProcess
from tests.support.redis_topologies import ClusterSet, SentinelSet

STORES = ("redis", "sentinel", "cluster")


@dataclass(frozen=True)
class Target:
    manifest: dict
    node_pids: list[int]


def roundtrip(target: Target, clients: int, seconds: float) -> dict:
    """``clients`` SAE pairs (one process each, the lean wire client) for ``seconds``."""
    return measure(target.manifest, "wire", clients, None, seconds, target.node_pids)


def _started(stack: ExitStack, process, *args):
    """``process.start(*args)``, stopped when ``stack`` closes (also if the start fails)."""
    stack.callback(process.stop)
    return process.start(*args)


def _gevent(workers: int) -> dict:
    return {"worker_class": "gevent", "workers": workers}


@contextmanager
def one_node(root: Path, workers: int) -> Iterator[Target]:
    manifest = one_node_layout(root)
    config_path = Path(manifest["nodes"]["KME-1"]["config"])
    port = configure_node(config_path, _gevent(workers))
    with ExitStack() as stack:
        node = _started(stack, NodeProcess(config_path, port, root / "node.log"))
        yield Target(manifest, [node.process.pid])


@contextmanager
def replicas(root: Path, count: int, workers: int) -> Iterator[Target]:
    manifest = one_node_layout(root / "net")
    node_config = Path(manifest["nodes"]["KME-1"]["config"])
    with ExitStack() as stack:
        (root / "redis").mkdir(parents=True)
        redis_server = _started(stack, RedisServerProcess(free_port(), root / "redis"))
        nodes = []
        for index in range(count):
            config_path = node_config.with_name(f"replica-{index}.yaml")
            shutil.copyfile(node_config, config_path)
            port = configure_node(config_path, _gevent(workers), {"url": redis_server.url}, port=free_port())
            nodes.append(_started(stack, NodeProcess(config_path, port, root / f"replica-{index}.log")))
        balancer = _started(stack, LoadBalancer(free_port(), [node.port for node in nodes], root))
        manifest["nodes"]["KME-1"]["url"] = balancer.url
        yield Target(manifest, [node.process.pid for node in nodes])


@contextmanager
def node_on_store(root: Path, store: str, workers: int) -> Iterator[Target]:
    manifest = one_node_layout(root / "net")
    config_path = Path(manifest["nodes"]["KME-1"]["config"])
    with ExitStack() as stack:
        redis = _started(stack, _store(root / store, store))
        port = configure_node(config_path, _gevent(workers), _redis_section(redis))
        node = _started(stack, NodeProcess(config_path, port, root / "node.log"))
        yield Target(manifest, [node.process.pid])


def _store(directory: Path, store: str):
    """The (not yet started) Redis deployment named ``store``, its files in ``directory``."""
    directory.mkdir(parents=True)
    if store == "redis":
        return RedisServerProcess(free_port(), directory)
    return {"sentinel": SentinelSet, "cluster": ClusterSet}[store](directory)


def _redis_section(redis) -> dict:
    """The node config's ``redis`` section reaching a started store."""
    if isinstance(redis, RedisServerProcess):
        return {"url": redis.url}
    return redis.settings().model_dump(mode="json", exclude_none=True, exclude_defaults=True)
