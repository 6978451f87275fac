"""Reading and showing link state: what `qkms links` and the demo print."""

from __future__ import annotations

import httpx
from rich.table import Table

from adapters.etsi014_client import client_tls_context
from etsi_api import km_wire
from kms.link_board import LinkHalf


def fetch_link_halves(manifest: dict, kme_id: str) -> list[LinkHalf]:
    """Every link half node ``kme_id`` knows of (its own and those polled from peers),
    read over the KM channel with that node's own certificate."""
    node_dir = manifest["nodes"][kme_id]["config"].rsplit("/", 1)[0]
    context = client_tls_context(manifest["ca"], f"{node_dir}/node.crt", f"{node_dir}/node.key")
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(manifest["nodes"][kme_id]["url"] + "/km/v1/links", params={"all": "1"})
        response.raise_for_status()
    return km_wire.halves_from_json(response.json())


def link_table(halves: list[LinkHalf]) -> Table:
    """One row per link half: state, QBER, secret key rate, material left."""
    table = Table("link", "sender", "state", "QBER", "secret rate (bit/s)", "pool (bits)", "reason", title="links")
    for half in sorted(halves, key=lambda h: (h.link_id, h.owner)):
        qber = half.metrics.get("qber")
        rate = half.metrics.get("secret_rate_bps")
        table.add_row(half.link_id, half.owner, half.state, f"{qber:.2%}" if qber is not None else "-",
                      f"{rate:,.0f}" if rate is not None else "-", f"{half.available_bits:,}", half.reason[:60])
    return table
