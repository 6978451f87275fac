"""Every collected test has its own node ID: pytest-xdist (``make test``) schedules tests by
ID and runs only one of several that share it (tests/conftest.py gives schemathesis's
per-operation tests theirs)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_collected_test_has_its_own_node_id() -> None:
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    ids = [line for line in run.stdout.splitlines() if "::" in line]
    shared = {node_id: n for node_id, n in Counter(ids).items() if n > 1}
    assert not shared, f"node IDs shared by several tests: {shared}"
    assert sum("conforms_to_its_openapi_document[" in node_id for node_id in ids) >= 4
