"""``qkms admin``: operate a running network over the admin API (docs/operations.md).

Every command takes a ``qkms init`` directory and talks to one of its nodes (``--node``,
else the first that answers) with the administrator's certificate the manifest names.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console

from qkms.admin_client import (AdminClient, AdminError, changes_table, links_table, nodes_table, outcome_lines,
                               saes_table)
from qkms.layout_additions import additions_dir
from qkms.runner import load_manifest

DIRECTORY = click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
NODE = click.option("--node", "kme_id", help="Ask this node (default: the first of the manifest that answers).")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")


@click.group()
def admin() -> None:
    """Operate a running network: list, add and remove, pause and resume, destroy, eavesdroppers."""


def _client(directory: Path, kme_id: str | None, prefer: tuple[str, ...] = ()) -> AdminClient:
    try:
        return AdminClient(load_manifest(directory), kme_id, prefer)
    except AdminError as exc:
        raise click.ClickException(exc.message) from None


def _call(client: AdminClient, method: str, path: str, body=None):
    try:
        return client.request(method, path, body)
    except AdminError as exc:
        where = f"{client.node} answered {exc.status}: " if exc.status else ""
        raise click.ClickException(where + exc.message) from None


def _show(table_of, directory: Path, kme_id: str | None, path: str, as_json: bool) -> None:
    client = _client(directory, kme_id)
    body = _call(client, "GET", path)
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        Console(width=160).print(table_of(body))


def _change(directory: Path, kme_id: str | None, method: str, path: str, body=None, prefer=()) -> dict:
    client = _client(directory, kme_id, prefer)
    outcome = _call(client, method, path, body)
    for line in outcome_lines(outcome, client.node):
        click.echo(line)
    return outcome


def _link_ends(directory: Path, link_id: str) -> tuple[str, ...]:
    """The ends of a link named NODE-NODE (to ask one of them first), if they are nodes."""
    nodes = load_manifest(directory)["nodes"]
    return tuple(part for part in link_id.split("-") if part in nodes)


@admin.command("nodes")
@DIRECTORY
@NODE
@AS_JSON
def list_nodes(directory: Path, kme_id: str | None, as_json: bool) -> None:
    """Every node of the network, its SAEs and links, and when it was last heard of."""
    _show(nodes_table, directory, kme_id, "/nodes", as_json)


@admin.command("links")
@DIRECTORY
@NODE
@AS_JSON
def list_links(directory: Path, kme_id: str | None, as_json: bool) -> None:
    """Every link: source, policy, state, and per sending end its health, QBER, key rate, pool."""
    _show(links_table, directory, kme_id, "/links", as_json)


@admin.command("saes")
@DIRECTORY
@NODE
@AS_JSON
def list_saes(directory: Path, kme_id: str | None, as_json: bool) -> None:
    """Every SAE of the network and its node."""
    _show(saes_table, directory, kme_id, "/saes", as_json)


@admin.command("changes")
@DIRECTORY
@NODE
@AS_JSON
def list_changes(directory: Path, kme_id: str | None, as_json: bool) -> None:
    """Every admin change a node holds, in order, and whether it applies there."""
    _show(changes_table, directory, kme_id, "/changes", as_json)


@admin.command("add-sae")
@DIRECTORY
@click.argument("sae_id")
@click.argument("node")
@click.option("--cert-identity", help="Its certificate's identity, when it differs from SAE_ID.")
@NODE
def add_sae(directory: Path, sae_id: str, node: str, cert_identity: str | None, kme_id: str | None) -> None:
    """Attach SAE_ID to NODE; a certificate for it is written into DIRECTORY/saes if it has
    none, and the manifest lists it."""
    from qkms.layout_additions import ensure_sae_certificate, list_sae

    body = {"id": sae_id, "node": node, **({"cert_identity": cert_identity} if cert_identity else {})}
    cert = ensure_sae_certificate(directory, sae_id)
    _change(directory, kme_id, "POST", "/saes", body, prefer=(node,))
    list_sae(directory, sae_id, node)
    click.echo(f"  certificate: {cert}")


@admin.command("remove-sae")
@DIRECTORY
@click.argument("sae_id")
@NODE
def remove_sae(directory: Path, sae_id: str, kme_id: str | None) -> None:
    """Detach SAE_ID: it gets 401 from then on; its pending keys expire unreachable."""
    from qkms.layout_additions import forget_sae

    _change(directory, kme_id, "DELETE", f"/saes/{sae_id}")
    forget_sae(directory, sae_id)


@admin.command("set-policy")
@DIRECTORY
@click.argument("link_id")
@click.argument("policy")
@click.option("--fallback-below-bits", type=int, help="qkd-then-pqc: fall back to PQC below this many QKD bits.")
@NODE
def set_policy(directory: Path, link_id: str, policy: str, fallback_below_bits: int | None,
               kme_id: str | None) -> None:
    """Change which sources serve LINK_ID (both ends switch together, 2 s later)."""
    body = {"policy": policy, **({"fallback_below_bits": fallback_below_bits}
                                 if fallback_below_bits is not None else {})}
    _change(directory, kme_id, "PUT", f"/links/{link_id}/policy", body, _link_ends(directory, link_id))


def _state_command(action: str, summary: str) -> None:
    @admin.command(action, help=summary)
    @DIRECTORY
    @click.argument("link_id")
    @NODE
    def command(directory: Path, link_id: str, kme_id: str | None) -> None:
        _change(directory, kme_id, "POST", f"/links/{link_id}/{action}", None, _link_ends(directory, link_id))


_state_command("pause", "Stop LINK_ID's sources and keep every route off it (its pools are kept).")
_state_command("resume", "Run a paused or draining LINK_ID again.")
_state_command("drain", "Stop LINK_ID's sources; routes use what is left in its pools.")


@admin.command("destroy")
@DIRECTORY
@click.argument("link_id")
@click.option("--wait-s", type=float, default=60.0, show_default=True,
              help="Wait this long for both ends to report empty pools (0: do not wait).")
@NODE
def destroy(directory: Path, link_id: str, wait_s: float, kme_id: str | None) -> None:
    """Delete a paused or draining LINK_ID's key material at both ends."""
    client = _client(directory, kme_id, _link_ends(directory, link_id))
    for line in outcome_lines(_call(client, "POST", f"/links/{link_id}/destroy"), client.node):
        click.echo(line)
    deadline = time.monotonic() + wait_s
    while wait_s > 0:
        link = next(link for link in _call(client, "GET", "/links")["links"] if link["id"] == link_id)
        left = {(h["owner"], h["pool"]): h["available_bits"] for h in link["halves"] if h["fresh"]}
        if len(left) == len(link["halves"]) and not any(left.values()):
            click.echo(f"  {link_id}: every pool half reports 0 bits")
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"{link_id}: pools not reported empty within {wait_s:.0f} s: {left}")
        time.sleep(0.5)


@admin.command("add-node")
@DIRECTORY
@click.argument("new_node")
@NODE
def add_node(directory: Path, new_node: str, kme_id: str | None) -> None:
    """Tell the running network of NEW_NODE (written by `qkms init DIR --add-node`)."""
    body = _addition(directory, "nodes", new_node)
    manifest = load_manifest(directory)
    running = tuple(node for node in manifest["nodes"] if node != new_node)
    _change(directory, kme_id, "POST", "/nodes", body, running)


@admin.command("add-link")
@DIRECTORY
@click.argument("link_id")
@NODE
def add_link(directory: Path, link_id: str, kme_id: str | None) -> None:
    """Tell the running network of LINK_ID (written by `qkms init DIR --add-link`)."""
    body = _addition(directory, "links", link_id)
    _change(directory, kme_id, "POST", "/links", body, tuple(body["link"]["nodes"]))


def _addition(directory: Path, kind: str, name: str) -> dict:
    path = additions_dir(directory) / kind / f"{name}.json"
    if not path.is_file():
        flag = "--add-node" if kind == "nodes" else "--add-link"
        raise click.ClickException(f"{path} not found: write it with `qkms init {directory} {flag} {name}`")
    return json.loads(path.read_text())


@admin.command("eavesdropper")
@DIRECTORY
@click.argument("link_id")
@click.option("--attack", type=click.Choice(["intercept-resend", "pns"]), help="Switch this attack on.")
@click.option("--fraction", type=float, default=1.0, show_default=True, help="Share of the pulses attacked.")
@click.option("--off", is_flag=True, help="Switch the eavesdropper off.")
@NODE
def eavesdropper(directory: Path, link_id: str, attack: str | None, fraction: float, off: bool,
                 kme_id: str | None) -> None:
    """Switch a simulated eavesdropper on LINK_ID on (--attack) or off (--off), at both ends."""
    if off == (attack is not None):
        raise click.UsageError("give exactly one of --attack and --off")
    body = {"attack": None} if off else {"attack": attack, "fraction": fraction}
    _change(directory, kme_id, "POST", f"/links/{link_id}/eavesdropper", body, _link_ends(directory, link_id))
