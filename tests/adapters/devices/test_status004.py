"""ETSI 004 status codes: each one has a meaning, a health state and the AIT HTTP status."""

from __future__ import annotations

import pytest

from adapters.devices import status004

#: code -> (health while it stands, HTTP status in the AIT KMS document's table)
EXPECTED = {0: ("up", 200), 1: ("degraded", 200), 2: ("degraded", 500), 3: ("degraded", 400), 4: ("down", 500),
            5: ("degraded", 400), 6: ("degraded", 500), 7: ("degraded", 500), 8: ("degraded", 400)}


def test_every_code_of_the_enumeration_is_mapped() -> None:
    assert sorted(status004.STATUSES) == list(range(9))
    assert {code: (s.health, s.http_status) for code, s in status004.STATUSES.items()} == EXPECTED


@pytest.mark.parametrize("code", range(2, 9))
def test_a_failing_status_is_a_fault_with_a_reason(code: int) -> None:
    fault = status004.fault(code, "get-key")
    assert fault.kind == f"status_{code}" and f"ETSI 004 status {code}: " in fault.message
    assert fault.severe == (EXPECTED[code][0] == "down")


def test_an_unknown_code_is_severe() -> None:
    fault = status004.fault(42, "open-connect")
    assert fault.severe and "not an ETSI 004 status" in fault.message
