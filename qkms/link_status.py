"""Reading and showing link state: what `qkms links` and the demo print."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from rich.table import Table

from adapters.etsi014_client import client_tls_context
from etsi_api import km_wire
from kms.link_board import LinkHalf
from kms.link_manager_state import LinkManagerStatus
from qkms.supervisor import exit_reason


@dataclass(frozen=True)
class LinkState:
    """What a node reports about links: every half it knows of, and its link manager."""

    halves: list[LinkHalf]
    link_manager: LinkManagerStatus | None


def fetch_link_state(manifest: dict, kme_id: str) -> LinkState:
    """Every link half node ``kme_id`` knows of (its own and those polled from peers) and
    its link manager's state, read over the KM channel with that node's own certificate."""
    node_dir = manifest["nodes"][kme_id]["config"].rsplit("/", 1)[0]
    context = client_tls_context(manifest["ca"], f"{node_dir}/node.crt", f"{node_dir}/node.key")
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(manifest["nodes"][kme_id]["url"] + "/km/v1/links", params={"all": "1"})
        response.raise_for_status()
    body = response.json()
    return LinkState(km_wire.halves_from_json(body), km_wire.link_manager_from_json(body))


def link_manager_line(status: LinkManagerStatus | None) -> str:
    """``link manager: running (pid 4242), 1 restart, last exit: killed by SIGKILL``."""
    if status is None:
        return "link manager: not reported"
    text = f"link manager: {status.state}"
    if status.pid is not None:
        text += f" (pid {status.pid})"
    if status.state == "restarting" and status.backoff_s is not None:
        text += f", next start in {status.backoff_s:.1f} s"
    if status.restarts:
        text += f", {status.restarts} restart{'s' if status.restarts != 1 else ''}, " \
                f"last exit: {exit_reason(status.last_exit_code)}"
    return text


def link_table(state: LinkState) -> Table:
    """One row per link half: state, QBER, secret key rate, speedup against real time
    (simulated links), material left; the link manager's state below."""
    table = Table("link", "source", "sender", "state", "QBER", "secret rate (bit/s)", "speedup", "pool (bits)", "reason",
                  title="links", caption=link_manager_line(state.link_manager))
    for half in sorted(state.halves, key=lambda h: (h.link_id, h.owner)):
        qber = half.metrics.get("qber")
        rate = half.metrics.get("secret_rate_bps")
        speedup = half.metrics.get("speedup")  # simulated links: device seconds per wall second
        table.add_row(half.link_id, ",".join(half.sources) or "-", half.owner, half.state, f"{qber:.2%}" if qber is not None else "-",
                      f"{rate:,.0f}" if rate is not None else "-", f"{speedup:.2f}x" if speedup is not None else "-",
                      f"{half.available_bits:,}", half.reason[:60])
    return table
