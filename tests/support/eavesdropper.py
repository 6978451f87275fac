"""Switching an eavesdropper on and off in one simulated link of a LocalNetwork.

Today through the simulated source's ``eve_file`` (both ends read it before every
frame, so both simulate the same attack); once the admin API lands, through
``POST /admin/v1/links/{link_id}/eavesdropper`` with the administrator's certificate,
the command the eve file stands in for. Only this class changes then.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Eavesdropper:
    """The eavesdropper of link ``link_id``; pass ``source_settings()`` to the link's source."""

    def __init__(self, directory: Path, link_id: str):
        self.link_id = link_id
        self.path = directory / f"eve-{link_id}.json"

    def source_settings(self) -> dict:
        return {"eve_file": str(self.path)}

    def switch_on(self, kind: str = "intercept-resend", fraction: float = 1.0) -> None:
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps({"kind": kind, "fraction": fraction}))
        os.replace(partial, self.path)  # a frame starting now reads all of it or nothing

    def switch_off(self) -> None:
        self.path.unlink(missing_ok=True)
