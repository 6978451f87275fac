"""The dashboard's blueprint in process: administrators only (static files too), the
state document (every configured node and link, halves as the board knows them,
samples and alarms after ``since``), rate curves, and the vendored chart library
exactly as its README records it. In a browser: tests/integration/test_dashboard_browser.py."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from kms.link_board import LinkHalf
from kms.telemetry import Alarm, LinkSample
from tests.support.monitored_app import MonitoredNode, monitored_node

STATIC = Path(__file__).resolve().parents[2] / "etsi_api" / "dashboard" / "static"


@pytest.fixture
def node() -> MonitoredNode:
    return monitored_node()


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/api/state", "/dashboard/static/dashboard.js",
                                  "/dashboard/static/vendor/uPlot.iife.min.js", "/dashboard/api/rate-distance/A-B"])
@pytest.mark.parametrize("caller", ["prometheus", "intruder", "sae-a", "A", None])
def test_only_administrators_reach_any_of_it(node: MonitoredNode, path: str, caller) -> None:
    response = node.get(path, caller)
    assert response.status_code == 401
    assert "administrator" in response.get_json()["message"]


def test_the_page_and_its_files_are_served_from_the_package(node: MonitoredNode) -> None:
    page = node.get("/dashboard/")
    assert page.status_code == 200 and b'src="static/vendor/uPlot.iife.min.js"' in page.data
    assert node.get("/dashboard").status_code == 302
    for name in ("dashboard.js", "dashboard.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"):
        assert node.get(f"/dashboard/static/{name}").data == (STATIC / name).read_bytes()
    # Nothing is loaded from outside the node (the SVG namespace URI is a name, not a fetch).
    assert not re.search(rb'(src|href)="(https?:)?//', page.data)
    assert not re.search(rb"fetch\(\s*[\"'`](https?:)?//", (STATIC / "dashboard.js").read_bytes())


def test_the_state_shows_every_node_and_link_as_the_board_knows_them(node: MonitoredNode) -> None:
    now = time.time()
    node.storage.board.publish([LinkHalf("A-B", "A", 4096, "up", "frame 7", {"qber": 0.02}, now),
                                LinkHalf("A-B", "B", 2048, "degraded", "QBER 25%: possible eavesdropper",
                                         {"qber": 0.25}, now - 60)])
    state = node.get("/dashboard/api/state").get_json()
    assert [(n["id"], n["self"]) for n in state["nodes"]] == [("A", True), ("B", False), ("C", False)]
    ab, bc = state["links"]
    assert (ab["id"], ab["local"], ab["kinds"], ab["state"]) == ("A-B", True, ["simulated"], "stale")
    assert [(h["owner"], h["state"], h.get("available_bits")) for h in ab["halves"]] == \
        [("A", "up", 4096), ("B", "stale", 2048)]
    assert (bc["state"], bc["local"], bc["halves"][0]["state"]) == ("unknown", False, "unknown")
    assert state["link_manager"]["state"] == "stopped"


def test_samples_and_alarms_come_after_since(node: MonitoredNode) -> None:
    node.telemetry.record([LinkSample("A-B", "A", 10.0, "up", 0.02, 900.0, 4096),
                           LinkSample("A-B", "A", 20.0, "degraded", 0.25, 0.0, 4096)],
                          [Alarm(20.0, "A-B", "A", "critical", "qber", "QBER 2.0% -> 25.0%")])
    everything = node.get("/dashboard/api/state?since=0").get_json()
    assert everything["samples"] == {"A-B|A": [[10.0, 0.02, 900.0, 4096, "up"], [20.0, 0.25, 0.0, 4096, "degraded"]]}
    assert [a["message"] for a in everything["alarms"]] == ["QBER 2.0% -> 25.0%"]
    later = node.get("/dashboard/api/state?since=20").get_json()
    assert later["samples"] == {} and later["alarms"] == []
    assert node.get("/dashboard/api/state?since=soon").status_code == 400


def test_a_rate_curve_comes_with_the_measured_point(node: MonitoredNode) -> None:
    assert node.get("/dashboard/api/rate-distance/A-B").status_code == 400  # not computed yet
    assert node.get("/dashboard/api/rate-distance/X-Y").get_json()["message"] == "unknown link"
    node.telemetry.put_rate_curve("A-B", {"lengths_km": [0.0, 10.0], "plob_bits_per_pulse": [2.0, 1.0]})
    node.storage.board.publish([LinkHalf("A-B", "B", 0, "up", "", {"secret_bits_per_pulse": 0.0097}, time.time())])
    curve = node.get("/dashboard/api/rate-distance/A-B").get_json()
    assert curve == {"link": "A-B", "lengths_km": [0.0, 10.0], "plob_bits_per_pulse": [2.0, 1.0],
                     "measured_bits_per_pulse": 0.0097}


def test_the_vendored_chart_library_is_what_its_readme_records() -> None:
    readme = (STATIC / "vendor" / "README.md").read_text()
    for name, digest in re.findall(r"\| `(uPlot\.[\w.]+)` \| `[^`]+` \| `([0-9a-f]{64})` \|", readme):
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest, name
    assert len(re.findall(r"\| `(uPlot\.[\w.]+)` \|", readme)) == 3
    assert "MIT" in (STATIC / "vendor" / "uPlot.LICENSE").read_text()
