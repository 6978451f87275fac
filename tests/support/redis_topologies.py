"""Replicated Redis for tests, from Debian's redis-server on loopback: a master with one
replica watched by three sentinels, and a Cluster of three masters with a replica each.
Every process is stopped by ``stop()``; nodes can be killed to force a failover."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from kms.config import ClusterConfig, RedisConfig, SentinelConfig
from qkms.runner import stop_process
from tests.support.conditions import wait_until
from tests.support.processes import external_redis_binary, free_port
from tests.support.replication_link import ReplicationLink

MASTER_NAME = "qkms-test"


@dataclass
class RedisNode:
    """One redis-server (or sentinel) process on a loopback port."""

    port: int
    directory: Path
    extra: list[str]
    sentinel: bool = False
    process: subprocess.Popen | None = None

    def start(self) -> "RedisNode":
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / ("sentinel.conf" if self.sentinel else "redis.conf")
        config.write_text("\n".join(self._lines()) + "\n")
        command = [external_redis_binary(), str(config)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.answers, f"redis on port {self.port} to answer", 30)
        return self

    def _lines(self) -> list[str]:
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}", "protected-mode yes",
                 f"logfile {self.directory / 'redis.log'}"]
        if not self.sentinel:
            # A replica's full sync starts at once (Redis 7 waits 5 s by default for
            # more replicas to share one diskless transfer).
            lines += ["appendonly yes", "appendfsync always", 'save ""', "repl-diskless-sync-delay 0"]
        return lines + self.extra

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis on port {self.port} exited; see {self.directory / 'redis.log'}")
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, timeout_s=10)


@dataclass
class SentinelSet:
    """A master, one replica and three sentinels (quorum 2). With ``cuttable_link``
    everyone reaches the master through a :class:`ReplicationLink` (``link``) whose
    replication traffic a test can cut."""

    root: Path
    cuttable_link: bool = False
    master: RedisNode = field(init=False)
    replica: RedisNode = field(init=False)
    link: ReplicationLink | None = field(init=False, default=None)
    sentinels: list[RedisNode] = field(default_factory=list)

    def start(self) -> "SentinelSet":
        self.master = RedisNode(free_port(), self.root / "master", []).start()
        upstream = self.master.port
        if self.cuttable_link:
            self.link = ReplicationLink(self.master.port)
            upstream = self.link.port
        self.replica = RedisNode(free_port(), self.root / "replica", [f"replicaof 127.0.0.1 {upstream}"]).start()
        wait_until(self._replica_in_sync, "the replica to sync", 30)
        for index in range(3):
            rules = [f"sentinel monitor {MASTER_NAME} 127.0.0.1 {upstream} 2",
                     f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                     f"sentinel failover-timeout {MASTER_NAME} 5000"]
            self.sentinels.append(RedisNode(free_port(), self.root / f"sentinel-{index}", rules, sentinel=True).start())
        wait_until(self._sentinels_see_everyone, "every sentinel to know the replica and the other sentinels", 60)
        return self

    def _sentinels_see_everyone(self) -> bool:
        """A sentinel learns the replica from the master's INFO and its peers from their
        hello messages; one that has not yet could not take part in a failover."""
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                state = client.sentinel_master(MASTER_NAME)
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < len(self.sentinels) - 1:
                return False
        return True

    def _replica_in_sync(self) -> bool:
        with self.replica.client() as client:
            return client.info("replication").get("master_link_status") == "up"

    def settings(self, **extra) -> RedisConfig:
        nodes = tuple(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return RedisConfig(sentinel=SentinelConfig(master_name=MASTER_NAME, nodes=nodes), **extra)

    def current_master_port(self) -> int:
        with self.sentinels[0].client() as client:
            return int(client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)[1])

    def failed_over_from(self, old_port: int) -> bool:
        """True once every sentinel names a new master it holds healthy, which is what a
        Sentinel client checks before it connects (redis-py's ``check_master_state``).
        ``get-master-addr-by-name`` alone turns to the promoted replica while the failover
        is still running and the master record is still flagged down, and a sentinel that
        has not caught up would still hand out the dead master."""
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                state = client.sentinel_master(MASTER_NAME)
            if (int(state["port"]) == old_port or not state["is_master"]
                    or state["is_sdown"] or state["is_odown"]):
                return False
        return True

    def nodes(self) -> list[RedisNode]:
        return [self.master, self.replica]

    def flush(self) -> None:
        port = self.current_master_port()
        with redis.Redis(host="127.0.0.1", port=port) as client:
            client.flushall()

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            node.stop()
        if self.link is not None:
            self.link.close()


@dataclass
class ClusterSet:
    """Three masters with one replica each, slots spread by redis-cli."""

    root: Path
    nodes: list[RedisNode] = field(default_factory=list)

    def start(self) -> "ClusterSet":
        for index in range(6):
            port = free_port()
            rules = ["cluster-enabled yes", f"cluster-config-file {self.root / f'node-{index}' / 'nodes.conf'}",
                     "cluster-node-timeout 2000", f"cluster-port {free_port()}"]
            self.nodes.append(RedisNode(port, self.root / f"node-{index}", rules).start())
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_until(self._ready, "the cluster to agree on its slots", 60)
        return self

    def _ready(self) -> bool:
        """Slots agreed and every replica in sync with its master (else a killed master
        has no replica to promote)."""
        with self.nodes[0].client() as client:
            if client.cluster("info").get("cluster_state") != "ok":
                return False
        in_sync = 0
        for node in self.nodes:
            with node.client() as client:
                replication = client.info("replication")
            in_sync += replication["role"] == "slave" and replication.get("master_link_status") == "up"
        return in_sync == len(self.nodes) // 2

    def settings(self, **extra) -> RedisConfig:
        return RedisConfig(cluster=ClusterConfig(nodes=(f"127.0.0.1:{self.nodes[0].port}",)), **extra)

    def master_of(self, key: str) -> RedisNode:
        """The node currently serving ``key``'s hash slot as master."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if node.process.poll() is not None:
                continue
            with node.client() as client:
                if client.info("replication")["role"] != "master":
                    continue
                if any(start <= slot <= end for start, end in _own_slots(client)):
                    return node
        raise RuntimeError(f"no live master serves slot {slot}")

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                if client.info("replication")["role"] == "master":
                    client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _own_slots(client: redis.Redis) -> list[tuple[int, int]]:
    """The slot ranges the node behind ``client`` serves (CLUSTER MYSHARDID needs Redis 7.2)."""
    myself = next(line for line in client.execute_command("CLUSTER", "NODES").decode().splitlines()
                  if "myself" in line.split()[2])
    ranges = []
    for item in myself.split()[8:]:
        if item.startswith("["):
            continue  # a slot being migrated
        start, _, end = item.partition("-")
        ranges.append((int(start), int(end or start)))
    return ranges
