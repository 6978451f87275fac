"""A node under concurrent load and crashes, as real processes over mutual TLS.

Invariants (DESIGN.md sections 3, 5, 8): no key_ID and no key bytes delivered twice;
every key given to a master is retrievable exactly once by its slave; a node killed
with SIGKILL loses no reserved key and redelivers no delivered key; no key material
in any log line. Assertions compare counts and booleans only, so a failure never
prints key material.
"""

from __future__ import annotations

import base64
import queue
import random
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
import yaml

from adapters.etsi014_client import Etsi014Client, Etsi014Error
from tests.support.processes import NodeProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 16
MASTERS = CLIENTS // 2


@dataclass
class Ledger:
    """What the SAEs saw, shared by client threads."""

    issued: dict[str, bytes] = field(default_factory=dict)
    fetched: dict[str, bytes] = field(default_factory=dict)
    fetch_count: dict[str, int] = field(default_factory=dict)
    uncertain: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_issued(self, keys) -> None:
        with self.lock:
            for key in keys:
                self.issued.setdefault(key.key_id, key.material)
                if self.issued[key.key_id] != key.material:
                    self.errors.append("key_ID issued twice with different bytes")

    def add_fetched(self, keys) -> None:
        with self.lock:
            for key in keys:
                self.fetch_count[key.key_id] = self.fetch_count.get(key.key_id, 0) + 1
                self.fetched[key.key_id] = key.material


def master_loop(client: Etsi014Client, ids: queue.Queue, ledger: Ledger, rounds: int, stop: threading.Event):
    for _ in range(rounds):
        if stop.is_set():
            return
        try:
            keys = client.enc_keys("sae-2", number=random.choice((1, 4, 8)), size_bits=256)
        except (Etsi014Error, httpx.HTTPError):
            continue
        ledger.add_issued(keys)
        for key in keys:
            ids.put(key.key_id)


def slave_loop(client: Etsi014Client, ids: queue.Queue, ledger: Ledger, done: threading.Event):
    while not (done.is_set() and ids.empty()):
        batch = _take_batch(ids)
        if not batch:
            continue
        try:
            ledger.add_fetched(client.dec_keys("sae-1", batch))
        except httpx.ConnectError:
            continue  # never reached a node: nothing was served, the keys stay pending
        except (Etsi014Error, httpx.HTTPError) as exc:
            # A request in flight when a node dies may or may not have been served.
            with ledger.lock:
                ledger.uncertain.update(batch)
                ledger.errors.append(f"dec_keys failed: {type(exc).__name__}")


def _take_batch(ids: queue.Queue) -> list[str]:
    batch = []
    try:
        batch.append(ids.get(timeout=0.1))
        while len(batch) < 8:
            batch.append(ids.get_nowait())
    except queue.Empty:
        pass
    return batch


def run_traffic(url_by_role, manifest, rounds: int, stop: threading.Event | None = None) -> tuple[Ledger, queue.Queue]:
    """MASTERS master threads and CLIENTS-MASTERS slave threads, each with its own connection."""
    ledger, ids, done = Ledger(), queue.Queue(), threading.Event()
    stop = stop or threading.Event()

    def client(sae_id):
        sae = manifest["saes"][sae_id]
        return Etsi014Client(url_by_role(sae_id), sae["cert"], sae["key"], manifest["ca"], timeout_s=20)

    masters = [threading.Thread(target=master_loop, args=(client("sae-1"), ids, ledger, rounds, stop))
               for _ in range(MASTERS)]
    slaves = [threading.Thread(target=slave_loop, args=(client("sae-2"), ids, ledger, done))
              for _ in range(CLIENTS - MASTERS)]
    for thread in masters + slaves:
        thread.start()
    for thread in masters:
        thread.join()
    done.set()
    for thread in slaves:
        thread.join()
    return ledger, ids


def assert_exactly_once(ledger: Ledger) -> None:
    assert ledger.errors == []
    assert len(ledger.issued) > 0
    materials = list(ledger.issued.values())
    assert len(set(materials)) == len(materials), "two key_IDs carried the same bytes"
    assert all(count == 1 for count in ledger.fetch_count.values()), "a key was delivered twice"
    mismatched = sum(ledger.issued.get(k) != m for k, m in ledger.fetched.items())
    assert mismatched == 0, "slave received bytes different from the master's"


def assert_no_key_material_in(text: str, materials) -> None:
    leaked = sum(1 for m in materials if base64.b64encode(m).decode() in text or m.hex() in text)
    assert leaked == 0, f"{leaked} keys appear in the log"


def test_three_workers_sixteen_clients_never_deliver_twice(make_node):
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 3}})
    ledger, _ = run_traffic(lambda sae: node.url, node.manifest, rounds=60)
    assert_exactly_once(ledger)
    assert len(ledger.issued) >= 2000
    assert set(ledger.fetched) == set(ledger.issued), "some key was never delivered to its slave"
    node.process.stop()
    log = node.process.log_text()
    assert log.count('"event": "dec_keys"') > 0, "audit log was not captured"
    assert_no_key_material_in(log, ledger.issued.values())


def test_two_node_processes_sharing_one_redis(make_node, external_redis, tmp_path):
    """Two replicas of one node on one redis-server, one per worker class (gevent, gthread)."""
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"redis": {"url": external_redis.url},
                                                                "server": {"workers": 2}})
    replica_port = free_port()
    # Same node (KME_ID, KEK, certificates, Redis), another port: a second replica.
    replica_config = yaml.safe_load(node.config_path.read_text())
    replica_config["listen"]["port"] = replica_port
    replica_config["server"]["worker_class"] = "gthread"
    replica_config_path = node.config_path.parent / "replica.yaml"
    replica_config_path.write_text(yaml.safe_dump(replica_config))
    replica = NodeProcess(replica_config_path, replica_port, tmp_path / "replica.log").start()
    try:
        replica_url = f"https://127.0.0.1:{replica_port}"
        ledger, _ = run_traffic(lambda sae: node.url if sae == "sae-1" else replica_url, node.manifest, rounds=25)
    finally:
        replica.stop()
    assert_exactly_once(ledger)
    assert set(ledger.fetched) == set(ledger.issued)
    assert "Using worker: NodeWorker" in node.process.log_text()
    assert "Using worker: gthread" in replica.log_text()


def test_kill9_during_traffic_loses_no_reserved_key_and_redelivers_nothing(make_node):
    node = make_node(saes=("sae-1", "sae-2"))
    stop = threading.Event()
    result: dict = {}
    traffic = threading.Thread(target=lambda: result.update(
        zip(("ledger", "ids"), run_traffic(lambda sae: node.url, node.manifest, rounds=100000, stop=stop))))
    traffic.start()
    time.sleep(2.0)
    node.process.kill9()
    stop.set()
    traffic.join(timeout=120)
    ledger: Ledger = result["ledger"]
    assert len(ledger.uncertain) <= 16 * 8, "more failed requests than were in flight at the kill"
    node.process.start()
    assert len(ledger.issued) > 0 and len(ledger.fetched) > 0
    slave = node.client("sae-2")
    pending = [k for k in ledger.issued if k not in ledger.fetched and k not in ledger.uncertain]
    recovered = {}
    for start in range(0, len(pending), 64):
        recovered.update((k.key_id, k.material) for k in slave.dec_keys("sae-1", pending[start:start + 64]))
    assert len(recovered) == len(pending), "a confirmed reservation was lost in the crash"
    assert sum(recovered[k] != ledger.issued[k] for k in pending) == 0
    delivered = random.sample(sorted(ledger.fetched), min(200, len(ledger.fetched)))
    for start in range(0, len(delivered), 50):
        with pytest.raises(Etsi014Error) as refused:
            slave.dec_keys("sae-1", delivered[start:start + 50])
        assert refused.value.status == 400
