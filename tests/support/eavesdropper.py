"""Switching an eavesdropper on and off in one simulated link of a running network, the
way an operator does: ``qkms admin eavesdropper DIR LINK --attack ...`` / ``--off``.

The admin API stores the change, pushes it to both ends of the link, and each end's
link manager writes its source's ``eve_file`` (``qkms init`` gives every simulated
link one), which the source reads before every frame.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from qkms.cli import main


class Eavesdropper:
    """The eavesdropper of link ``link_id`` of the network whose layout is at ``root``."""

    def __init__(self, root: Path, link_id: str):
        self.root = root
        self.link_id = link_id

    def switch_on(self, kind: str = "intercept-resend", fraction: float = 1.0) -> str:
        return self._admin("--attack", kind, "--fraction", str(fraction))

    def switch_off(self) -> str:
        return self._admin("--off")

    def _admin(self, *options: str) -> str:
        result = CliRunner().invoke(main, ["admin", "eavesdropper", str(self.root), self.link_id, *options])
        assert result.exit_code == 0, result.output
        return result.output
