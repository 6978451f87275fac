"""The link manager's state (kms/link_manager_state.py): how the heartbeat and the
supervisor record combine, how long a heartbeat lasts, and a node's view over its
records (the records themselves: tests/kms/test_link_manager_records_contract.py)."""

from __future__ import annotations

import time

import pytest

from kms.config import parse_config
from kms.link_manager_state import (HEARTBEAT_MIN_TTL_S, Heartbeat, LinkManagerState, LinkManagerStatus,
                                    SupervisorRecord, derive_status, heartbeat_ttl_s)
from kms.storage import open_memory_storage
from kms.storage.memory_db import MemoryDatabase

NOW = 1_767_225_600.0
GRACE_S = 15.0


def record(state="running", pid=100, since=NOW - 60, **changes) -> SupervisorRecord:
    return SupervisorRecord(state, pid, changes.pop("restarts", 0), since, **changes)


@pytest.mark.parametrize("heartbeat, supervisor, state, healthy", [
    (Heartbeat(100, NOW - 0.5), record(), "running", True),
    (None, record(since=NOW - 1), "starting", True),
    (None, record(since=NOW - GRACE_S - 1), "stale", False),
    (Heartbeat(99, NOW - 0.5), record(since=NOW - 1), "starting", True),  # the previous process's beat
    (Heartbeat(99, NOW - 0.5), record(since=NOW - GRACE_S - 1), "stale", False),
    (Heartbeat(100, NOW - 0.5), record("restarting", restarts=1, last_exit_code=-9, backoff_s=0.5),
     "restarting", False),
    (None, record("stopped", pid=None), "stopped", False),
    (Heartbeat(7, NOW - 1), None, "running", True),  # a link manager started by hand
    (None, None, "stopped", False),
])
def test_derived_state(heartbeat, supervisor, state, healthy):
    status = derive_status(heartbeat, supervisor, GRACE_S, NOW)
    assert (status.state, status.healthy) == (state, healthy)


def test_restarting_reports_backoff_and_last_exit():
    status = derive_status(None, record("restarting", restarts=3, last_exit_code=-9, backoff_s=2.0), GRACE_S, NOW)
    assert (status.pid, status.restarts, status.last_exit_code, status.backoff_s) == (100, 3, -9, 2.0)


def test_heartbeat_age_only_for_the_current_process():
    running = derive_status(Heartbeat(100, NOW - 0.25), record(), GRACE_S, NOW)
    assert running.heartbeat_age_s == pytest.approx(0.25)
    assert derive_status(Heartbeat(99, NOW - 0.25), record(since=NOW), GRACE_S, NOW).heartbeat_age_s is None


def test_absent_is_healthy():
    assert LinkManagerStatus("absent").healthy


def test_status_dict_round_trip():
    status = LinkManagerStatus("restarting", 42, 2, -9, 1.0, None)
    assert LinkManagerStatus.from_dict(status.to_dict()) == status


@pytest.mark.parametrize("data", [None, [], {}, {"state": "dancing"}, {"state": "running", "pid": "x"},
                                  {"state": "running", "restarts": {}}])
def test_malformed_status_dict_is_refused(data):
    with pytest.raises((TypeError, ValueError)):
        LinkManagerStatus.from_dict(data)


def config(peers: int, links: int, km_timeout_s: float = 5.0):
    nodes = ["A", *(f"P{i}" for i in range(peers))]
    return parse_config({
        "kme_id": "A", "tls": {"cert": "c", "key": "k", "ca": "ca"}, "kek": {"env": "X"},
        "km_timeout_s": km_timeout_s,
        "peers": [{"kme_id": n, "url": f"https://127.0.0.1:{9000 + i}"} for i, n in enumerate(nodes[1:])],
        "links": [{"id": f"A-{n}", "nodes": ["A", n]} for n in nodes[1:links + 1]],
    })


def test_heartbeat_outlasts_the_slowest_healthy_step():
    # One KM call per peer (poll) and per own link (pool sync), each up to km_timeout_s.
    assert heartbeat_ttl_s(config(peers=3, links=2, km_timeout_s=2.0)) == HEARTBEAT_MIN_TTL_S + 5 * 2.0
    assert heartbeat_ttl_s(config(peers=0, links=0)) == HEARTBEAT_MIN_TTL_S


# --- over a node's records ----------------------------------------------------------------

def test_a_node_without_links_reports_absent_without_reading_records():
    storage = open_memory_storage("KME-1")
    storage.link_manager.record(SupervisorRecord("stopped", None, 0, NOW))
    state = LinkManagerState(storage.link_manager, heartbeat_ttl_s=None)
    state.beat(4242)
    assert state.status() == LinkManagerStatus("absent")
    assert storage.link_manager.read()[0] is None


def test_a_beating_link_manager_runs_until_its_heartbeat_expires():
    now = [time.time()]
    database = MemoryDatabase(clock=lambda: now[0])
    records = open_memory_storage("KME-1", database).link_manager
    state = LinkManagerState(records, heartbeat_ttl_s=GRACE_S)
    state.record(SupervisorRecord("running", 4242, 0, time.time()))
    state.beat(4242)
    assert state.status().state == "running"
    now[0] += GRACE_S
    assert records.read()[0] is None  # expired; the status turns stale once the grace has passed too


def test_for_node_takes_the_ttl_from_the_config():
    records = open_memory_storage("A").link_manager
    assert LinkManagerState.for_node(records, config(peers=1, links=0)).status().state == "absent"
    assert LinkManagerState.for_node(records, config(peers=1, links=1)).status().state == "stopped"
