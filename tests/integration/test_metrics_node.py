"""/metrics of a real node (gunicorn master, three gevent workers, the link manager,
embedded Redis) scraped over mutual TLS and parsed with prometheus-client's own text
parser: keys delivered through whichever worker are all counted, whichever worker
answers the scrape, the link manager's metrics are there too, and a worker that dies
takes none of its counts with it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from adapters.etsi014_client import client_tls_context
from kms.config import load_config
from qkms.server import metrics_dir
from tests.support.conditions import wait_until
from tests.support.network import FAST_LINK, LocalNetwork

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DELIVERIES = 12


def scrape(net: LocalNetwork, kme_id: str) -> dict[tuple[str, tuple], float]:
    """One scrape on a new connection (so the kernel may pick any worker)."""
    admin = net.manifest["admin"]
    context = client_tls_context(net.manifest["ca"], admin["cert"], admin["key"])
    with httpx.Client(verify=context, timeout=30) as client:
        response = client.get(net.manifest["nodes"][kme_id]["url"] + "/metrics")
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def enc_keys_by_pid(directory: Path) -> dict[int, float]:
    """Keys counted by each process's own metrics file (the counter files of the dir)."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            name, sample, labels, _ = json.loads(key)
            if sample == "qkms_keys_delivered_total" and labels == {"endpoint": "enc_keys"}:
                counts[int(path.stem.split("_")[1])] = count
    return counts


def test_every_worker_and_the_link_manager_are_counted(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path / "net", {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")], FAST_LINK)
    directory = metrics_dir(load_config(net.manifest["nodes"]["A"]["config"]))
    try:
        net.start()
        net.wait_for_keys(net.client("sae-a"), "sae-b", DELIVERIES, timeout_s=120)
        before = scrape(net, "A")
        for _ in range(DELIVERIES):  # each on a new client: new connections, spread over the workers
            with net.client("sae-a") as master:
                master.enc_keys("sae-b", number=1, size_bits=256)
        scrapes = [scrape(net, "A") for _ in range(6)]
        per_process = enc_keys_by_pid(directory)
        busiest = max(per_process, key=per_process.get)
        os.kill(busiest, signal.SIGKILL)  # gunicorn starts a new worker; the dead one's counts stay
        wait_until(lambda: not _alive(busiest), "the killed worker to be gone", 30)
        # A connection the kernel had queued on the dead worker's own socket is reset
        # until gunicorn's replacement listens: scrape again until one is answered.
        after_kill = wait_until(lambda: _scrape_or_none(net, "A"), "a scrape after the kill", 60)
    finally:
        net.close()
    assert value(before, "qkms_keys_delivered_total", endpoint="enc_keys") == 0
    for samples in scrapes:
        assert value(samples, "qkms_keys_delivered_total", endpoint="enc_keys") == DELIVERIES
        assert value(samples, "qkms_http_responses_total", endpoint="etsi014.enc_keys", method="POST",
                     status="200") == DELIVERIES
        assert value(samples, "qkms_http_request_duration_seconds_count", endpoint="etsi014.enc_keys") == DELIVERIES
        assert value(samples, "qkms_delivery_route_hops_bucket", le="1.0") == DELIVERIES
        assert value(samples, "qkms_redis_ping_seconds_count", process="link_manager") > 0
        assert value(samples, "qkms_link_qber", link="A-B", owner="A") > 0
        assert value(samples, "qkms_link_generated_bits_total", link="A-B", owner="A") >= \
            value(samples, "qkms_link_consumed_bits_total", link="A-B", owner="A", how="carved") >= DELIVERIES * 256
    assert sum(per_process.values()) == DELIVERIES
    assert len([pid for pid, count in per_process.items() if count]) >= 2, per_process
    assert value(after_kill, "qkms_keys_delivered_total", endpoint="enc_keys") == DELIVERIES


def _scrape_or_none(net: LocalNetwork, kme_id: str) -> dict | None:
    try:
        return scrape(net, kme_id)
    except httpx.TransportError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
