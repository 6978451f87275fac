"""A node under concurrent load and crashes, as real processes over mutual TLS.

Invariants (DESIGN.md sections 3, 5, 8): no key_ID and no key bytes delivered twice;
every key given to a master is retrievable exactly once by its slave; a node killed
with SIGKILL loses no reserved key and redelivers no delivered key; no key material
in any log line. Assertions compare counts and booleans only, so a failure never
prints key material.

Nothing rests on chance: each master thread asks for a fixed cycle of request sizes,
so the number of keys a run must deliver is computed exactly; and a client thread
ends at its first failed request, which is counted: none may fail without a fault, and
after a kill each thread fails exactly once (masters) or at most once (slaves).
"""

from __future__ import annotations

import base64
import itertools
import queue
import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import pytest
import yaml

from adapters.etsi014_client import Etsi014Client, Etsi014Error
from kms.config import load_config
from qkms.audit_log import audit_files
from tests.support.processes import NodeProcess, free_port
from tests.support.conditions import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 16
MASTERS = CLIENTS // 2
SLAVES = CLIENTS - MASTERS
#: Keys per enc_keys request; master thread t asks for them in turn, starting at index t.
REQUEST_SIZES = (1, 4, 8)
#: At most this many key_IDs per dec_keys request.
MAX_BATCH = 8


def request_sizes(thread: int) -> Iterable[int]:
    """The endless, fixed sequence of request sizes of master thread ``thread``."""
    return itertools.islice(itertools.cycle(REQUEST_SIZES), thread % len(REQUEST_SIZES), None)


def keys_asked(rounds: int) -> int:
    """How many keys the masters ask for in ``rounds`` requests each."""
    return sum(sum(itertools.islice(request_sizes(thread), rounds)) for thread in range(MASTERS))


@dataclass
class Ledger:
    """What the SAEs saw, shared by client threads."""

    issued: dict[str, bytes] = field(default_factory=dict)
    fetched: dict[str, bytes] = field(default_factory=dict)
    fetch_count: dict[str, int] = field(default_factory=dict)
    uncertain: set[str] = field(default_factory=set)
    #: Failed requests by (operation, exception class); never skipped silently.
    failed: Counter = field(default_factory=Counter)
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

    def add_failure(self, operation: str, exc: Exception) -> None:
        with self.lock:
            self.failed[(operation, type(exc).__name__)] += 1

    def failures(self, operation: str) -> int:
        with self.lock:
            return sum(n for (op, _), n in self.failed.items() if op == operation)

    def progress(self) -> tuple[int, int]:
        """(keys issued, keys fetched) so far."""
        with self.lock:
            return len(self.issued), len(self.fetched)


def master_loop(client: Etsi014Client, ids: queue.Queue, ledger: Ledger, sizes: Iterable[int]):
    """One enc_keys per size, until the first failure."""
    for number in sizes:
        try:
            keys = client.enc_keys("sae-2", number=number, size_bits=256)
        except (Etsi014Error, httpx.HTTPError) as exc:
            ledger.add_failure("enc_keys", exc)
            return
        ledger.add_issued(keys)
        for key in keys:
            ids.put(key.key_id)


def slave_loop(client: Etsi014Client, ids: queue.Queue, ledger: Ledger, done: threading.Event):
    """dec_keys for what the masters got, until they are done and the queue is empty, or
    the first failure."""
    while not (done.is_set() and ids.empty()):
        batch = _take_batch(ids)
        if not batch:
            continue
        try:
            ledger.add_fetched(client.dec_keys("sae-1", batch))
        except httpx.ConnectError as exc:
            ledger.add_failure("dec_keys", exc)  # never reached a node: the keys stay pending
            return
        except (Etsi014Error, httpx.HTTPError) as exc:
            # A request in flight when a node dies may or may not have been served.
            ledger.add_failure("dec_keys", exc)
            with ledger.lock:
                ledger.uncertain.update(batch)
            return


def _take_batch(ids: queue.Queue) -> list[str]:
    batch = []
    try:
        batch.append(ids.get(timeout=0.1))
        while len(batch) < MAX_BATCH:
            batch.append(ids.get_nowait())
    except queue.Empty:
        pass
    return batch


def run_traffic(url_by_role, manifest, rounds: int | None, ledger: Ledger | None = None) -> Ledger:
    """MASTERS master threads and SLAVES slave threads, each with its own connection; each
    master makes ``rounds`` requests (sizes from request_sizes), or, if ``rounds`` is None,
    goes on until a request fails."""
    ledger, ids, done = ledger or Ledger(), queue.Queue(), threading.Event()

    def client(sae_id):
        sae = manifest["saes"][sae_id]
        return Etsi014Client(url_by_role(sae_id), sae["cert"], sae["key"], manifest["ca"], timeout_s=20)

    masters = [threading.Thread(target=master_loop, args=(client("sae-1"), ids, ledger,
                                                          itertools.islice(request_sizes(t), rounds)))
               for t in range(MASTERS)]
    slaves = [threading.Thread(target=slave_loop, args=(client("sae-2"), ids, ledger, done))
              for _ in range(SLAVES)]
    for thread in masters + slaves:
        thread.start()
    for thread in masters:
        thread.join()
    done.set()
    for thread in slaves:
        thread.join()
    return ledger


def assert_exactly_once(ledger: Ledger) -> None:
    assert ledger.errors == []
    assert ledger.failed == Counter(), "requests failed on a node without faults"
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
    ledger = run_traffic(lambda sae: node.url, node.manifest, rounds=60)
    assert_exactly_once(ledger)
    assert len(ledger.issued) == keys_asked(rounds=60) == 2080
    assert set(ledger.fetched) == set(ledger.issued), "some key was never delivered to its slave"
    node.process.stop()
    trail = "".join(path.read_text() for path in audit_files(load_config(node.config_path).audit.file))
    assert trail.count('"event": "dec_keys"') > 0, "no dec_keys in the audit trail"
    assert all(key_id in trail for key_id in ledger.issued), "a delivered key_ID is missing from the audit trail"
    assert_no_key_material_in(node.process.log_text() + trail, ledger.issued.values())


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
        ledger = run_traffic(lambda sae: node.url if sae == "sae-1" else replica_url, node.manifest, rounds=25)
    finally:
        replica.stop()
    assert_exactly_once(ledger)
    assert len(ledger.issued) == keys_asked(rounds=25)
    assert set(ledger.fetched) == set(ledger.issued)
    assert "Using worker: NodeWorker" in node.process.log_text()
    assert "Using worker: gthread" in replica.log_text()


#: The kill comes once this much traffic went through (issued, fetched keys).
KILL_AFTER = (480, 240)
#: Keys reserved just before the kill that no slave thread knows of: certainly pending.
HELD_BACK_KEYS = 64
#: Of the keys fetched before the kill, the latest (most at risk of a lost deletion) and a
#: seeded sample of the older ones are asked for again, one per request.
RECHECK_LATEST, RECHECK_SAMPLE, SAMPLE_SEED = 100, 100, 2024


def test_kill9_during_traffic_loses_no_reserved_key_and_redelivers_nothing(make_node):
    node = make_node(saes=("sae-1", "sae-2"))
    ledger = Ledger()
    traffic = threading.Thread(target=run_traffic, args=(lambda sae: node.url, node.manifest, None, ledger))
    traffic.start()
    wait_until(lambda: all(got >= want for got, want in zip(ledger.progress(), KILL_AFTER)),
               f"{KILL_AFTER} keys issued and fetched", 120)
    assert ledger.failed == Counter(), "requests failed before the kill"
    ledger.add_issued(node.client("sae-1").enc_keys("sae-2", number=HELD_BACK_KEYS, size_bits=256))
    node.process.kill9()
    traffic.join(timeout=120)  # every client thread ends at its first failure
    assert not traffic.is_alive(), "client threads hung after the kill"
    assert ledger.errors == []
    # Masters go on until a request fails, which the dead node makes certain; a slave with
    # no key_ID left to fetch may end without one.
    assert ledger.failures("enc_keys") == MASTERS, ledger.failed
    assert ledger.failures("dec_keys") <= SLAVES, ledger.failed
    assert len(ledger.uncertain) <= SLAVES * MAX_BATCH

    node.process.start()
    slave = node.client("sae-2")
    pending = [k for k in ledger.issued if k not in ledger.fetched and k not in ledger.uncertain]
    assert len(pending) >= HELD_BACK_KEYS
    recovered = {}
    for start in range(0, len(pending), 64):
        recovered.update((k.key_id, k.material) for k in slave.dec_keys("sae-1", pending[start:start + 64]))
    assert len(recovered) == len(pending), "a confirmed reservation was lost in the crash"
    assert sum(recovered[k] != ledger.issued[k] for k in pending) == 0
    # A key of a failed dec_keys was served before the crash (refused now) or not (served now, same bytes).
    uncertain = Counter(fetch_alone(slave, key_id, ledger.issued[key_id]) for key_id in sorted(ledger.uncertain))
    assert set(uncertain) <= {"refused", "same bytes"}, uncertain
    fetched = list(ledger.fetched)  # in the order the slaves got them
    older = fetched[:-RECHECK_LATEST]
    again = fetched[-RECHECK_LATEST:] + random.Random(SAMPLE_SEED).sample(older, min(RECHECK_SAMPLE, len(older)))
    outcomes = Counter(fetch_alone(slave, key_id, ledger.issued[key_id]) for key_id in again)
    assert outcomes == Counter(refused=len(again)), "a delivered key was delivered again"


def fetch_alone(slave: Etsi014Client, key_id: str, issued: bytes) -> str:
    """dec_keys for one key_ID (all-or-none answers say nothing about a key in a batch):
    "refused" (400), "same bytes" or "other bytes"."""
    try:
        (key,) = slave.dec_keys("sae-1", [key_id])
    except Etsi014Error as exc:
        return "refused" if exc.status == 400 else f"status {exc.status}"
    return "same bytes" if key.material == issued else "other bytes"
