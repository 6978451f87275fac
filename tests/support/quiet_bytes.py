"""Key material never in test output (DESIGN.md section 8), also when an assertion fails.

pytest explains a failed ``assert a == b`` by printing both sides, and for keys that is
the key. :func:`explain_comparison` (the ``pytest_assertrepr_compare`` hook of
tests/conftest.py) replaces that explanation wherever a side is a byte string or a
list, tuple or set holding byte strings: each is shown by its length and a SHA-256
prefix, which still tells equal from different and where lists first differ.
"""

from __future__ import annotations

import hashlib

_BYTES = (bytes, bytearray, memoryview)
_CONTAINERS = (list, tuple, set, frozenset)
_SHOWN_ITEMS = 8


def _holds_bytes(value) -> bool:
    if isinstance(value, _BYTES):
        return True
    return isinstance(value, _CONTAINERS) and any(isinstance(item, _BYTES) for item in value)


def describe(value) -> str:
    """A byte string as ``<N bytes sha256:0123456789ab>``; containers item by item."""
    if isinstance(value, _BYTES):
        data = bytes(value)
        return f"<{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}>"
    if isinstance(value, _CONTAINERS):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
        shown = ", ".join(describe(item) for item in items[:_SHOWN_ITEMS])
        more = f", ... ({len(items)} items)" if len(items) > _SHOWN_ITEMS else ""
        return f"{type(value).__name__}[{shown}{more}]"
    return type(value).__name__ if isinstance(value, (str, dict)) else repr(value)


def explain_comparison(op: str, left, right) -> list[str] | None:
    """The failure explanation for ``left op right`` when either side holds bytes, else
    None (pytest's own)."""
    if not (_holds_bytes(left) or _holds_bytes(right)):
        return None
    lines = [f"{describe(left)} {op} {describe(right)}",
             "(byte strings shown by length and SHA-256 prefix: no key material in test output)"]
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        first = next((i for i, (a, b) in enumerate(zip(left, right)) if a != b), None)
        if first is not None:
            lines.append(f"first difference at index {first}")
        if len(left) != len(right):
            lines.append(f"lengths differ: {len(left)} and {len(right)}")
    return lines
