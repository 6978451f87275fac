"""What admin changes and link health mean at a link's end, carried out by its link manager.

- **Eavesdroppers** (simulated links): the link manager writes the simulated source's
  ``eve_file`` (JSON ``{"kind", "fraction"}``) when an administrator switches one on,
  and removes it when it is switched off; the source reads the file at the start of
  every frame. The change's ``effective_at`` (the middle of a frame slot) makes both
  ends switch before the same frame.
- **Pool destruction**: every block of every pool of the link, both halves, is deleted
  from this node's Redis (material included, never a soft delete); recorded as done
  in the change log, so it happens once per change, also after a restart.
- **Eavesdropping alarms**: a link half whose source reports a possible eavesdropper
  (a QBER jump, or frames aborted on their QBER) goes to the audit trail, once per
  frame, and once more when the alarm clears.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from kms import audit
from kms.changes import ChangeLog
from kms.config import LinkConfig, NodeConfig, pool_id
from kms.link_board import LinkHalf
from kms.pools import PoolStore
from kms.runtime_config import Eavesdropper, RuntimeView

log = logging.getLogger("qkms.linkd")

#: A position beyond every block sequence (simulated frames and PQC microsecond
#: sequences alike): discarding before it deletes a whole pool half.
BEYOND_EVERY_SEQUENCE = 10 ** 18
ALARM_MARK = "possible eavesdropper"
_UNSET = object()


def eve_file(config: NodeConfig, link: LinkConfig) -> Path | None:
    """The ``eve_file`` of a link's simulated QKD source (relative to the node's
    directory, as the source reads it), or None if it has none."""
    if "qkd" not in link.roles or link.source.get("kind") != "simulated" or not link.source.get("eve_file"):
        return None
    path = Path(link.source["eve_file"])
    return path if path.is_absolute() else config.config_dir / path


def write_eve_file(path: Path, eve: Eavesdropper | None) -> None:
    """Switch the eavesdropper a simulated source reads from ``path`` (atomically)."""
    if eve is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"kind": eve.attack, "fraction": eve.fraction}))
    os.replace(temporary, path)


class LinkEffects:
    """Carries out, at node ``kme_id``, what the runtime view asks of its link ends."""

    def __init__(self, kme_id: str, pools: PoolStore, changes: ChangeLog | None):
        self._kme_id = kme_id
        self._pools = pools
        self._changes = changes
        self._eves: dict[str, object] = {}
        self._alarms: dict[str, tuple | None] = {}

    def apply(self, view: RuntimeView) -> None:
        """Eavesdropper files and pool destructions as ``view`` says."""
        self._set_eavesdroppers(view)
        self._destroy_pools(view)

    def _set_eavesdroppers(self, view: RuntimeView) -> None:
        for link in view.config.local_links():
            path = eve_file(view.config, link)
            wanted = view.eavesdroppers.get(link.id)
            applied = self._eves.get(link.id, _UNSET)
            if path is None or applied == wanted or (applied is _UNSET and wanted is None):
                self._eves.setdefault(link.id, None)
                continue  # a file nobody switched through the admin API is left alone
            write_eve_file(path, wanted)
            self._eves[link.id] = wanted
            log.warning("link %s: eavesdropper %s by an administrator", link.id,
                        f"{wanted.attack} on {wanted.fraction:.0%} of pulses" if wanted else "switched off")

    def _destroy_pools(self, view: RuntimeView) -> None:
        if self._changes is None or not view.destroys:
            return
        done = self._changes.done()
        for link in view.config.local_links():
            for change_id in view.destroys.get(link.id, ()):
                if change_id not in done:
                    bits = self.destroy(link)
                    self._changes.mark_done(change_id)
                    audit.event("pools_destroyed", node=self._kme_id, link=link.id, destroyed_bits=bits,
                                change_id=change_id)
                    log.warning("link %s: %d bits of key material destroyed by an administrator", link.id, bits)

    def destroy(self, link: LinkConfig) -> int:
        """Delete every block of both halves of both pools of ``link`` here; bits destroyed."""
        return sum(8 * self._pools.discard_before(pool_id(link.id, role), owner, BEYOND_EVERY_SEQUENCE, 0)
                   for role in ("qkd", "pqc") for owner in link.nodes)

    def check_alarms(self, halves: list[LinkHalf], peers: dict[str, str]) -> None:
        """Audit each new eavesdropping alarm of this node's halves (``peers``: pool id ->
        the link's other end), and the end of one."""
        for half in halves:
            alarm = ALARM_MARK in half.reason
            mark = (half.metrics.get("frame"), half.reason) if alarm else None
            previous = self._alarms.get(half.link_id)
            fields = {"node": self._kme_id, "link": half.link_id, "peer": peers.get(half.link_id),
                      "state": half.state, "reason": half.reason, "qber": half.metrics.get("qber"),
                      "frame": half.metrics.get("frame")}
            if alarm and mark != previous:
                audit.event("eavesdropping_alarm", **fields)
            elif not alarm and previous is not None:
                audit.event("eavesdropping_alarm_cleared", **fields)
            self._alarms[half.link_id] = mark
