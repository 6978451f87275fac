"""`make demo` end to end: three node processes, simulated links, ETSI exchanges."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_exchanges_keys_over_one_and_two_hops(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qkms", "demo", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "sae-a enc_keys  ->  sae-b dec_keys" in out and "sae-a enc_keys  ->  sae-c dec_keys" in out
    assert "A-B-C" in out and "one-time pad per hop" in out
    assert out.count("│ yes") == 6 and "│ NO" not in out
    assert out.count("again is refused: 400") == 2
    assert "all nodes stopped" in out
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a demo process outlived the demo"
