"""``qkms audit DIR --key-id ID``: follow one key across every node it crossed.

Reads the audit file (and its rotated predecessors) of every node of a ``qkms init``
directory and prints, in the key's order (made at the master's node, each relay hop,
fetched by each slave), the entries naming the key_ID: no key material is in them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from kms.config import load_config
from kms.errors import QkmsError
from qkms.audit_log import audit_files
from qkms.runner import load_manifest

#: Where each kind of entry comes in a key's life (relay hops by their index).
PHASES = {"enc_keys": 0, "relay": 1, "dec_keys": 2}


def read_entries(path: Path):
    """The JSON entries of one audit file (lines that are not JSON objects are skipped)."""
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def node_audit_files(directory: Path) -> dict[str, list[Path]]:
    """Every node's audit files (oldest first), from each node's configuration."""
    files = {}
    for kme_id, entry in load_manifest(directory)["nodes"].items():
        try:
            files[kme_id] = audit_files(load_config(entry["config"]).audit.file)
        except QkmsError:
            files[kme_id] = []
    return files


def key_trail(directory: Path, key_id: str) -> list[dict]:
    """Every audit entry of the directory's nodes naming ``key_id``, in the key's order."""
    found = [entry for paths in node_audit_files(directory).values() for path in paths
             for entry in read_entries(path) if key_id in (entry.get("key_IDs") or [])]
    return sorted(found, key=lambda e: (PHASES.get(e.get("event"), 3), e.get("request_id") or "",
                                        e.get("hop_index", 0), e.get("time", "")))


def describe(entry: dict) -> str:
    event = entry.get("event")
    if event == "enc_keys":
        routes = entry.get("provenance", {}).get("routes") or [entry.get("provenance", {}).get("route", [])]
        return f"made for master {entry.get('sae')}, slaves {', '.join(entry.get('slaves', []))}; " \
               f"route {' | '.join(' -> '.join(r) for r in routes if r)}"
    if event == "relay":
        outcome = f"reserved for {', '.join(entry.get('slaves', []))}" if entry.get("action") == "reserved" \
            else f"forwarded to {entry.get('receiver')}"
        return f"hop {entry.get('hop_index')} from {entry.get('sender')} ({entry.get('material')}); {outcome}"
    if event == "dec_keys":
        return f"fetched by slave {entry.get('sae')} (master {entry.get('master')})"
    return event or "?"


def path_of(trail: list[dict]) -> list[str]:
    """The nodes the key crossed, in order (its first route if it went to several nodes)."""
    made = next((e for e in trail if e.get("event") == "enc_keys"), None)
    route = (made or {}).get("provenance", {}).get("route")
    if route:
        return route
    relayed = next((e for e in trail if e.get("event") == "relay"), None)
    return relayed.get("route", []) if relayed else [e.get("node") for e in trail[:1]]


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--key-id", required=True, help="The key_ID to follow.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON lines.")
def audit(directory: Path, key_id: str, as_json: bool) -> None:
    """Follow one key across every node of DIRECTORY it crossed, from its audit files."""
    trail = key_trail(directory, key_id)
    if not trail:
        raise click.ClickException(f"no audit entry names key_ID {key_id}")
    if as_json:
        for entry in trail:
            click.echo(json.dumps(entry, sort_keys=True))
        return
    table = Table("time (UTC)", "node", "event", "what", title=f"key {key_id}",
                  caption="path: " + " -> ".join(path_of(trail)))
    for entry in trail:
        table.add_row(entry.get("time", "?"), entry.get("node", "?"), entry.get("event", "?"), describe(entry))
    Console(width=160).print(table)
