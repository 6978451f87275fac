"""Fuzz every HTTP interface of a node from its OpenAPI document, at scale.

Runs the schemathesis tests of the ETSI 014, KM channel, SKIP and admin documents
(tests/etsi_api/test_schemathesis.py, test_fuzz_interfaces.py) with many examples per
operation against real nodes, counts every request sent and every status answered, and
fails if any answer broke a check (no 5xx but documented 503s, status, content type and
body as documented, failures as safe JSON errors).

    .venv/bin/python benchmarks/fuzz_interfaces.py --examples 1000 --rounds 4   # >= 100,000 requests

Each round draws with another hypothesis seed (1, 2, ...), so rounds add new requests,
on new networks: the admin API slows down as its change log grows (every change asked
for, even one refused, reads and folds the whole log), so more, shorter rounds send
more requests an hour (docs/security.md, "Fuzzing every HTTP interface").

Prints a JSON summary (requests per interface and status, wall time); ``--summary``
also writes it to a file, ``--count-file`` keeps the per-request lines.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES = ["tests/etsi_api/test_schemathesis.py::test_etsi_api_conforms_to_its_openapi_document",
           "tests/etsi_api/test_fuzz_interfaces.py"]


def count_requests(lines: list[str]) -> dict[str, collections.Counter]:
    """Requests per interface and status, from the lines ``check_conformance`` appends."""
    by_interface: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in filter(None, lines):
        interface, status = line.split()
        by_interface[interface][status] += 1
    return by_interface


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000, help="hypothesis examples per operation")
    parser.add_argument("--rounds", type=int, default=4, help="runs, each with its own hypothesis seed")
    parser.add_argument("--count-file", type=Path, help="keep the 'interface status' line of every request here "
                                                       "(emptied first; counts an interrupted run too)")
    parser.add_argument("--summary", type=Path, help="also write the JSON summary to this file")
    args = parser.parse_args()
    exit_codes = []
    with tempfile.TemporaryDirectory() as scratch:
        counts_path = args.count_file or Path(scratch) / "requests.txt"
        counts_path.write_text("")
        env = {**os.environ, "QKMS_FUZZ_EXAMPLES": str(args.examples), "QKMS_FUZZ_COUNT_FILE": str(counts_path)}
        started = time.monotonic()
        for seed in range(1, args.rounds + 1):
            exit_codes.append(subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                              "--timeout", "0", f"--hypothesis-seed={seed}", *MODULES],
                                             cwd=REPO, env=env).returncode)
        elapsed_s = time.monotonic() - started
        by_interface = count_requests(counts_path.read_text().split("\n"))
    summary = {"examples_per_operation": args.examples, "rounds": args.rounds, "pytest_exit_codes": exit_codes,
               "requests": sum(sum(c.values()) for c in by_interface.values()),
               "by_interface": {name: dict(sorted(c.items())) for name, c in sorted(by_interface.items())},
               "wall_s": round(elapsed_s, 1)}
    print(json.dumps(summary, indent=2))
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    return max(exit_codes)


if __name__ == "__main__":
    sys.exit(main())
