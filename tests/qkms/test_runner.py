"""qkms.runner: node logs, and the files of the node's embedded Redis, are not
readable by other users."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kms.config import load_config
from qkms.layout import NodePlan, free_port, write_layout
from qkms.runner import open_log, start_all, stop_all


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_log_creates_0640_and_narrows_an_existing_log(tmp_path):
    with open_log(tmp_path / "new.log") as log:
        log.write(b"first\n")
    assert mode(tmp_path / "new.log") == 0o640
    earlier = tmp_path / "earlier.log"
    earlier.write_bytes(b"an earlier run\n")
    earlier.chmod(0o644)
    with open_log(earlier) as log:
        log.write(b"this run\n")
    assert mode(earlier) == 0o640 and earlier.read_bytes() == b"an earlier run\nthis run\n"


@pytest.mark.integration
@pytest.mark.slow  # a node stopped right after it starts takes graceful_timeout (10 s) to exit
def test_qkms_up_logs_and_redis_files_are_closed_to_other_users(tmp_path):
    manifest = write_layout(tmp_path, [NodePlan("KME-1", ("sae-1", "sae-2"), free_port())]).to_dict()
    data_dir = load_config(manifest["nodes"]["KME-1"]["config"]).redis.data_dir
    data_dir.mkdir(mode=0o700)
    (data_dir / "redis.log").write_text("written by an earlier version\n")
    (data_dir / "redis.log").chmod(0o644)
    stop_all(start_all(tmp_path))
    assert mode(tmp_path / "logs") == 0o750 and mode(tmp_path / "logs" / "KME-1.log") == 0o640
    files = [path for path in data_dir.rglob("*") if not path.is_socket()]
    assert {"redis.conf", "redis.log"} <= {path.name for path in files}
    assert any(path.name.startswith("appendonly") for path in files)
    readable = {path.name: oct(mode(path)) for path in files if mode(path) & 0o027}
    assert not readable, f"open to other users or writable by the group: {readable}"
