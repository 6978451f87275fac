"""A failed assertion on key material shows digests, not the key (tests/support/quiet_bytes.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from tests.support.quiet_bytes import explain_comparison

ROOT = Path(__file__).resolve().parent.parent
KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def _printed(lines: list[str] | None) -> str:
    assert lines is not None, "a comparison of byte strings kept pytest's explanation"
    return "\n".join(lines)


def test_byte_strings_are_shown_by_length_and_digest() -> None:
    text = _printed(explain_comparison("==", KEY, OTHER))
    assert f"<32 bytes sha256:{hashlib.sha256(KEY).hexdigest()[:12]}>" in text
    assert KEY.hex()[:8] not in text and repr(KEY)[:12] not in text


def test_lists_of_keys_say_where_they_first_differ() -> None:
    text = _printed(explain_comparison("==", [KEY, KEY, KEY], [KEY, OTHER]))
    assert "first difference at index 1" in text and "lengths differ: 3 and 2" in text
    assert KEY.hex()[:8] not in text and OTHER.hex()[:8] not in text


def test_comparisons_without_bytes_keep_pytests_explanation() -> None:
    assert explain_comparison("==", [1, 2], [1, 3]) is None
    assert explain_comparison("in", "key_ID", "some text") is None


def test_a_failing_test_prints_no_key(tmp_path: Path) -> None:
    (tmp_path / "test_leak.py").write_text(
        f"def test_keys_differ():\n    alice = {KEY!r}\n    bob = bytes(range(1, 33))\n"
        "    assert [alice] == [bob]\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                          str(tmp_path / "test_leak.py")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout[-2000:]
    failure = run.stdout.split("def test_keys_differ", 1)[1].split("assert [alice] == [bob]", 1)[1]
    assert "sha256:" in failure and "first difference at index 0" in failure
    assert repr(OTHER)[:12] not in failure and OTHER.hex()[:8] not in failure
