"""The link manager of a real node under its supervisor: killed with SIGKILL it is
started again and the pools fill again; its state shows in /healthz, the ETSI status
extension and ``qkms links``; a hung one (its heartbeat overdue) makes /healthz 503.

Two real nodes A-B, each a ``qkms serve`` process with its embedded Redis, joined by a
simulated link. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from adapters.etsi014_client import client_tls_context
from kms.link_manager_state import heartbeat_ttl_s
from kms.config import load_config
from tests.support.conditions import wait_until
from tests.support.network import FAST_LINK, LocalNetwork
from tests.support.processes import is_gone, link_manager_pid

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINK = "A-B"
FILL_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("pair"), {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")],
                           FAST_LINK)
    network.start()
    yield network
    network.close()


@pytest.fixture(scope="module")
def pools_a(net):
    return net.pools("A")


def pool_bits(pools) -> int:
    """Link material node A holds for link A-B (both halves)."""
    return sum(pools.available_bits(LINK, owner) for owner in ("A", "B"))


def linkd_of(net, kme_id: str) -> int | None:
    return link_manager_pid(net.running[kme_id].process.pid)


def healthz(net, kme_id: str) -> httpx.Response:
    sae = net.manifest["saes"][f"sae-{kme_id.lower()}"]
    context = client_tls_context(net.manifest["ca"], sae["cert"], sae["key"])
    with httpx.Client(verify=context, timeout=10) as client:
        return client.get(net.manifest["nodes"][kme_id]["url"] + "/healthz")


def link_manager(net, kme_id: str) -> dict:
    return healthz(net, kme_id).json()["link_manager"]


def test_a_link_manager_killed_9_is_restarted_and_the_pools_fill_again(net, pools_a):
    wait_until(lambda: pool_bits(pools_a) > 0, "A's pool to fill", FILL_TIMEOUT_S)
    first = wait_until(lambda: linkd_of(net, "A"), "A's link manager")
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: is_gone(first), "the killed link manager to end", 10)
    level_after_kill = pool_bits(pools_a)
    second = wait_until(lambda: (pid := linkd_of(net, "A")) not in (None, first) and pid,
                        "a new link manager of A", 30)
    wait_until(lambda: pool_bits(pools_a) > level_after_kill, "A's pool to fill again", FILL_TIMEOUT_S)
    assert linkd_of(net, "A") == second


def test_health_status_and_links_report_the_restart(net):
    state = wait_until(lambda: (lm := link_manager(net, "A"))["state"] == "running" and lm,
                       "A's link manager to run", 30)
    assert state["pid"] == linkd_of(net, "A")
    assert state["restarts"] == 1
    assert healthz(net, "A").status_code == 200
    extension = net.client("sae-a").status("sae-b")["status_extension"]
    assert extension["qkms_link_manager"]["restarts"] == 1
    assert extension["qkms_link_manager"]["state"] in ("running", "starting")
    assert link_manager(net, "B")["restarts"] == 0
    shown = subprocess.run([sys.executable, "-m", "qkms", "links", str(net.root), "--node", "A"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"link manager: running (pid {state['pid']}), 1 restart, last exit:" in shown.stdout


def test_a_hung_link_manager_makes_healthz_503_until_it_beats_again(net):
    pid = wait_until(lambda: linkd_of(net, "A"), "A's link manager")
    stale_after_s = heartbeat_ttl_s(load_config(net.manifest["nodes"]["A"]["config"]))
    os.kill(pid, signal.SIGSTOP)
    try:
        response = wait_until(lambda: (r := healthz(net, "A")).status_code == 503 and r,
                              "/healthz to notice the overdue heartbeat", stale_after_s + 30)
        assert response.json()["link_manager"]["state"] == "stale"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: healthz(net, "A").status_code == 200, "/healthz to recover", 30)
    assert link_manager(net, "A")["pid"] == pid  # the same process resumed; nothing restarted
