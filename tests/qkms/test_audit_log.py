"""The node's audit file (qkms/audit_log.py): whole lines from several processes, none
lost or repeated across rotations, modes 0640, a removed directory or lock file made
again, and entries that go to the file only."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import stat
from pathlib import Path

import pytest

from kms import audit
from kms.config import AuditConfig
from qkms.audit_log import AUDIT_FILE_MODE, AUDIT_LOGGER, SharedRotatingFileHandler, audit_files, install_audit_log

WRITERS = 4
LINES_PER_WRITER = 400
MAX_BYTES = 4_000


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("qkms.audit", logging.INFO, __file__, 0, message, None, None)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for file in audit_files(path) for line in file.read_text().splitlines()]


def _write(handler: SharedRotatingFileHandler, writer: int, count: int) -> None:
    for index in range(count):
        handler.emit(_record(json.dumps({"writer": writer, "index": index, "pad": "x" * 60})))


def _child(handler: SharedRotatingFileHandler, writer: int) -> None:
    _write(handler, writer, LINES_PER_WRITER)
    handler.close()


def test_processes_sharing_one_handler_lose_and_repeat_no_line_across_rotations(tmp_path: Path) -> None:
    """The handler is made, and used, before the fork, as in gunicorn's master and
    workers: every child must lock and append on descriptors of its own."""
    path = tmp_path / "audit" / "audit.log"
    handler = SharedRotatingFileHandler(path, MAX_BYTES, backups=1_000)
    _write(handler, -1, 5)
    children = [mp.get_context("fork").Process(target=_child, args=(handler, writer)) for writer in range(WRITERS)]
    for child in children:
        child.start()
    _write(handler, -2, LINES_PER_WRITER)
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    handler.close()
    lines = _lines(path)
    seen = [(line["writer"], line["index"]) for line in lines]
    expected = {(-1, i) for i in range(5)} | {(w, i) for w in [-2, *range(WRITERS)] for i in range(LINES_PER_WRITER)}
    assert len(seen) == len(expected) and set(seen) == expected
    files = audit_files(path)
    assert len(files) > 10, "the test must rotate many times"
    assert all(file.stat().st_size <= MAX_BYTES for file in files)
    for writer in [-2, *range(WRITERS)]:  # one process's lines stay in its order across files
        assert [i for w, i in seen if w == writer] == list(range(LINES_PER_WRITER))


def test_backups_beyond_the_limit_are_dropped_and_files_are_0640(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    handler = SharedRotatingFileHandler(path, 1_000, backups=2)
    _write(handler, 0, 100)
    handler.close()
    assert [file.name for file in audit_files(path)] == ["audit.log.2", "audit.log.1", "audit.log"]
    assert [line["index"] for line in _lines(path)] == list(range(100 - len(_lines(path)), 100))
    for file in [*audit_files(path), path.with_name("audit.log.lock")]:
        assert stat.S_IMODE(file.stat().st_mode) == AUDIT_FILE_MODE


def test_a_removed_directory_and_lock_file_are_made_again(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.log"
    handler = SharedRotatingFileHandler(path, 100_000, backups=1)
    _write(handler, 0, 3)
    os.unlink(handler.lock_path)
    _write(handler, 1, 3)
    assert handler.lock_path.exists()
    shutil.rmtree(path.parent)
    _write(handler, 2, 3)
    handler.close()
    assert [(line["writer"], line["index"]) for line in _lines(path)] == [(2, 0), (2, 1), (2, 2)]


def test_installed_audit_entries_reach_the_audit_file_and_not_the_server_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger(AUDIT_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    path = tmp_path / "audit.jsonl"
    handler = install_audit_log(AuditConfig(file=path))
    try:
        with caplog.at_level(logging.INFO):
            audit.record("dec_keys", "sae-2", ["k-1"], node="KME-1")
        assert [(line["event"], line["key_IDs"]) for line in _lines(path)] == [("dec_keys", ["k-1"])]
        assert [record for record in caplog.records if record.name == AUDIT_LOGGER] == []
    finally:
        handler.close()
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
