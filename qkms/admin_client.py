"""The admin API from the operator's side: a client with the manifest's admin certificate,
and the tables ``qkms admin`` prints."""

from __future__ import annotations

from typing import Any

import httpx
from rich.table import Table

from adapters.etsi014_client import client_tls_context
from kms.errors import QkmsError


class AdminError(QkmsError):
    """The admin API refused a request (``status``) or no node answered (status 0)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class AdminClient:
    """Calls ``/admin/v1`` of a node of a ``qkms init`` manifest: ``kme_id``, or the first
    of ``prefer`` and then of the manifest's nodes that answers."""

    def __init__(self, manifest: dict, kme_id: str | None = None, prefer: tuple[str, ...] = (),
                 timeout_s: float = 60.0):
        admin = manifest.get("admin") or {}
        if not admin.get("cert"):
            raise AdminError(0, "the manifest names no administrator (a layout older than the admin API)")
        self._manifest = manifest
        self._context = client_tls_context(manifest["ca"], admin["cert"], admin["key"])
        self._timeout_s = timeout_s
        order = [kme_id] if kme_id else [*prefer, *manifest["nodes"]]
        self._candidates = [node for node in dict.fromkeys(order) if node in manifest["nodes"]]
        if kme_id and not self._candidates:
            raise AdminError(0, f"no node {kme_id} in the manifest")
        self.node: str | None = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer; AdminError with the node's message for a 4xx/5xx, or status 0
        if no candidate node answered."""
        failures = []
        for node in ([self.node] if self.node else self._candidates):
            url = self._manifest["nodes"][node]["url"] + "/admin/v1" + path
            try:
                with httpx.Client(verify=self._context, timeout=self._timeout_s) as client:
                    response = client.request(method, url, json=body)
            except httpx.TransportError as exc:
                failures.append(f"{node}: {type(exc).__name__}")
                continue
            self.node = node
            if response.status_code != 200:
                raise AdminError(response.status_code, _message(response))
            return response.json()
        raise AdminError(0, "no node answered (" + "; ".join(failures) + ")")


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text[:200]


def _number(value: Any, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def nodes_table(body: dict) -> Table:
    table = Table("node", "url", "SAEs", "links", "last heard", title=f"nodes (as {body['node']} knows them)",
                  caption=f"{body['changes']} admin change(s) in force, log version {body['version']}, "
                          f"digest {body['digest'][:12]}")
    for node in body["nodes"]:
        heard = "this node" if node["self"] else (
            "never" if node["last_heard_s"] is None else f"{node['last_heard_s']:.1f} s ago")
        table.add_row(node["kme_id"], node["url"], ", ".join(node["saes"]), ", ".join(node["links"]), heard)
    return table


def links_table(body: dict) -> Table:
    table = Table("link", "policy", "state", "source", "sender", "pool", "health", "QBER", "key rate (bit/s)",
                  "pool (bits)", "reason", title=f"links (as {body['node']} knows them)")
    for link in body["links"]:
        source = " + ".join(kind for kind in (link["source"], link["pqc"]) if kind)
        if link["eavesdropper"]:
            source += f" [eve: {link['eavesdropper']['attack']} {link['eavesdropper']['fraction']:.0%}]"
        for index, half in enumerate(link["halves"]):
            first = index == 0
            table.add_row(link["id"] if first else "", link["policy"] if first else "", link["state"] if first else "",
                          source if first else "", half["owner"], half["role"], half["state"],
                          _number(half["qber"], ".2%"), _number(half["key_rate_bps"], ",.0f"),
                          _number(half["available_bits"], ","), half["reason"][:50])
    return table


def saes_table(body: dict) -> Table:
    table = Table("SAE", "node", "certificate identity", title="SAEs")
    for sae in body["saes"]:
        table.add_row(sae["id"], sae["node"], sae["cert_identity"] or "")
    for removed in body["removed"]:
        table.add_row(removed["id"], "(removed)", "")
    return table


def changes_table(body: dict) -> Table:
    table = Table("version", "origin", "admin", "op", "arguments", "applied", title=f"admin changes at {body['node']}")
    for change in body["changes"]:
        args = ", ".join(f"{k}={v}" for k, v in change["args"].items() if k not in ("at",))
        applied = "yes" if change["applied"] else (f"skipped: {change['skipped']}" if change["skipped"] else "pending")
        table.add_row(str(change["version"]), change["origin"], change["admin"], change["op"], args[:60], applied)
    return table


def outcome_lines(body: dict, node: str) -> list[str]:
    """What a change did, for the operator."""
    change = body["change"]
    lines = [f"{change['op']} stored at {node} (change {change['change_id']}, version {change['version']})"]
    if change["effective_at"]:
        lines.append(f"  takes effect at unix time {change['effective_at']:.1f}")
    lines.append(f"  before: {body['before']}")
    lines.append(f"  after:  {body['after']}")
    for push in body["propagation"]:
        state = "acknowledged" if push["acknowledged"] else f"not reached yet ({push['reason']}); it catches up"
        lines.append(f"  {push['node']}: {state}")
    return lines
