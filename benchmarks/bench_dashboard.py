"""Benchmark: the scrape time of /metrics and the dashboard's update latency.

Starts a chain A-B-C of ``qkms serve`` processes with simulated QKD links (frames every
4 s), delivers some keys (relayed through B), then:

* **scrape time**: ``--scrapes`` GETs of node B's /metrics with the administrator's
  certificate, on one keep-alive connection and on a new connection each (TLS
  handshake included), as Prometheus would; p50, p90 and max, and the answer's size;
* **update latency**: node B's dashboard open in headless Chromium (through the
  loopback proxy of ``qkms dashboard``); ``--rounds`` times an eavesdropper is switched
  on in link A-B and off again (`qkms admin eavesdropper`). For each critical alarm, and each clearing, it reports
  the time from the link half's changed observation (the alarm's timestamp: when the
  link manager saw the frame's result) to the moment the alarm appeared in the page
  (a MutationObserver's clock), and the time from the switch to the page.

    .venv/bin/python benchmarks/bench_dashboard.py --scrapes 200 --rounds 3 [--screenshot docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.etsi014_client import client_tls_context  # noqa: E402
from qkms.dashboard_proxy import DashboardProxy, Upstream  # noqa: E402
from tests.support.browser import headless_chromium  # noqa: E402
from tests.support.eavesdropper import Eavesdropper  # noqa: E402
from tests.support.network import FAST_LINK, LocalNetwork  # noqa: E402

OBSERVER = """
window.qkmsSeen = [];
new MutationObserver(() => {
  for (const li of document.querySelectorAll('#alarms li[data-at]')) {
    const key = li.dataset.at + '|' + li.dataset.owner + '|' + li.dataset.kind + '|' + li.dataset.severity;
    if (!window.qkmsSeen.some((s) => s.key === key)) {
      window.qkmsSeen.push({key, at: Number(li.dataset.at), shown: Date.now() / 1000, link: li.dataset.link,
                            severity: li.dataset.severity, kind: li.dataset.kind});
    }
  }
}).observe(document.getElementById('alarms'), {childList: true, subtree: true});
"""


def percentiles(values: list[float]) -> dict:
    ms = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "max_ms": round(float(ms.max()), 2)}


def scrape_times(net: LocalNetwork, kme_id: str, scrapes: int) -> dict:
    admin = net.manifest["admin"]
    url = net.manifest["nodes"][kme_id]["url"] + "/metrics"
    context = client_tls_context(net.manifest["ca"], admin["cert"], admin["key"])
    kept, fresh, size = [], [], 0
    with httpx.Client(verify=context, timeout=30) as client:
        for _ in range(scrapes):
            started = time.perf_counter()
            size = len(client.get(url).content)
            kept.append(time.perf_counter() - started)
    for _ in range(scrapes):
        started = time.perf_counter()
        with httpx.Client(verify=context, timeout=30) as client:
            client.get(url)
        fresh.append(time.perf_counter() - started)
    return {"keep_alive": percentiles(kept), "new_connection": percentiles(fresh), "bytes": size}


def wait_for(driver, predicate, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = driver.execute_script("return window.qkmsSeen;")
        found = [s for s in seen if predicate(s)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise TimeoutError("no alarm in the page")


def update_latencies(net: LocalNetwork, eve: Eavesdropper, rounds: int, workdir: Path, screenshot: Path | None) -> dict:
    results = {"eavesdropper_on": [], "eavesdropper_off": []}
    with DashboardProxy(Upstream.from_manifest(net.manifest, "B")) as proxy, \
            headless_chromium(workdir / "chromium") as driver:
        driver.get(proxy.url)
        driver.execute_script(OBSERVER)
        time.sleep(8)  # a few polls: the page shows the links up before the first switch
        for _ in range(rounds):
            for phase, severity in (("eavesdropper_on", "critical"), ("eavesdropper_off", "cleared")):
                switched = time.time()
                eve.switch_on() if phase == "eavesdropper_on" else eve.switch_off()
                alarm = wait_for(driver, lambda s: s["link"] == "A-B" and s["severity"] == severity
                                 and s["at"] > switched, 120)
                results[phase].append({"change_to_page_s": round(alarm["shown"] - alarm["at"], 3),
                                       "switch_to_page_s": round(alarm["shown"] - switched, 3)})
                if screenshot is not None and phase == "eavesdropper_on" and not screenshot.exists():
                    time.sleep(3)  # let the charts show a few points of the attack
                    driver.save_screenshot(str(screenshot))
                time.sleep(6)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the dashboard during an attack")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        net = LocalNetwork(workdir / "net", {"A": ("sae-a",), "B": ("sae-b",), "C": ("sae-c",)},
                           [("A", "B"), ("B", "C")], FAST_LINK)
        eve = Eavesdropper(net.root, "A-B")
        try:
            net.start()
            master, slave = net.client("sae-a"), net.client("sae-c")
            net.wait_for_keys(master, "sae-c", 8, timeout_s=180)
            for _ in range(4):
                keys = master.enc_keys("sae-c", number=2)
                slave.dec_keys("sae-a", [k.key_id for k in keys])
            report = {"scrape_time_node_B": scrape_times(net, "B", args.scrapes),
                      "update_latency": update_latencies(net, eve, args.rounds, workdir, args.screenshot)}
        finally:
            net.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
