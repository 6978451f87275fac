"""constraints.txt, the pinned versions written by ``make lock``."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


def pins(path: Path = CONSTRAINTS) -> dict[str, Version]:
    """Pinned version by canonical distribution name; every line must be ``name==version``."""
    pinned = {}
    for line in path.read_text().splitlines():
        line = line.partition("#")[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not an exact pin: {line}"
        pinned[canonicalize_name(requirement.name)] = Version(specifiers[0].version)
    return pinned
