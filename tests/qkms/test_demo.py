"""`make demo` end to end: four node processes, QKD, hybrid and ML-KEM links, ETSI exchanges."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from tests.support.conditions import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_exchanges_keys_over_one_and_two_hops(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qkms", "demo", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "sae-a enc_keys  ->  sae-b dec_keys" in out and "sae-a enc_keys  ->  sae-c dec_keys" in out
    assert "sae-a enc_keys  ->  sae-d dec_keys" in out
    assert "A-B-C-D" in out and "one-time pad per hop" in out
    assert "A-B qkd: qkd-sim" in out and "B-C hybrid: qkd-sim+ml-kem" in out and "C-D pqc: ml-kem" in out
    assert out.count("│ yes") == 9 and "│ NO" not in out
    assert out.count("again is refused: 400") == 3
    assert "(C-D is ML-KEM only): 400 'not all extension_mandatory request options could be met'" in out
    assert re.search(r"dashboard of node B: https://127\.0\.0\.1:\d+/dashboard/ \(administrator certificate "
                     r"\S+/admin/admin\.crt", out)
    assert "all nodes stopped" in out
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a demo process outlived the demo"


def test_keep_running_serves_the_dashboard_until_ctrl_c(tmp_path):
    demo = subprocess.Popen([sys.executable, "-m", "qkms", "demo", str(tmp_path / "demo"), "--keep-running"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        url = wait_until(lambda: next((m.group(1) for line in list(lines)
                                       if (m := re.search(r"dashboard:\S* open (http://127\.0\.0\.1:\d+/dashboard/)",
                                                          line))), None), "the dashboard URL", 400)
        page = httpx.get(url, timeout=30)
        state = httpx.get(url + "api/state", timeout=30).json()
        still_running = demo.poll() is None
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(120)
        reader.join(30)
    assert still_running and page.status_code == 200 and "uPlot" in page.text
    assert [n["id"] for n in state["nodes"]] == ["B", "A", "C", "D"]
    assert {link["id"] for link in state["links"]} == {"A-B", "B-C", "C-D"}
    assert code == 0, "".join(lines)[-2000:]
    assert "all nodes stopped" in "".join(lines)


def test_demo_with_devices_shows_a_device_fault_and_the_recovery(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qkms", "demo", "--devices", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    out = result.stdout
    assert "A-B fed by a pair of mock QKD devices" in out and "A-B qkd: qkd-device" in out
    assert "B-C hybrid: qkd-sim+ml-kem" in out and "C-D pqc: ml-kem" in out
    assert "answers every ETSI request with 503" in out
    assert "A reports link A-B degraded" in out or "A reports link A-B down" in out
    assert "link A-B up again after" in out
    assert out.count("│ yes") == 12 and "│ NO" not in out
    assert "and both mock devices" in out
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a demo process outlived the demo"
