"""The ``qkms`` command line for operators."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from kms.config import check_files, load_config
from kms.errors import QkmsError
from qkms.cli_pki import pki
from qkms.layout import NodePlan, free_port, write_layout

DEFAULT_SAES = ("sae-1", "sae-2")


@click.group()
@click.version_option(package_name="qkms")
def main() -> None:
    """qkms: quantum-safe key management (ETSI GS QKD 014 over mutual TLS)."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sae", "sae_ids", multiple=True, help="SAE_ID to create (repeatable; default sae-1, sae-2).")
@click.option("--kme-id", default="KME-1", show_default=True, help="KME_ID of the node.")
@click.option("--port", type=int, default=0, help="Listen port (default: a free port).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def init(directory: Path, sae_ids: tuple[str, ...], kme_id: str, port: int, as_json: bool) -> None:
    """Write a ready-to-run node with its CA, certificates, KEK and config into DIRECTORY."""
    if (directory / "manifest.json").exists():
        raise click.ClickException(f"{directory} already holds a qkms layout")
    plan = NodePlan(kme_id, tuple(sae_ids) or DEFAULT_SAES, port or free_port())
    try:
        manifest = write_layout(directory, [plan])
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(json.dumps(manifest.to_dict(), indent=2))
        return
    table = Table("SAE", "node", "certificate")
    for sae_id, entry in manifest.saes.items():
        table.add_row(sae_id, entry["node"], entry["cert"])
    console = Console()
    console.print(f"node {kme_id}: config {manifest.nodes[kme_id]['config']}, {manifest.nodes[kme_id]['url']}")
    console.print(table)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def serve(config_path: Path) -> None:
    """Run one node until SIGTERM or Ctrl-C."""
    from qkms.server import serve as run_node

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    try:
        config = load_config(config_path)
        check_files(config)
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None
    run_node(config)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".demo")
def demo(directory: Path) -> None:
    """Run the demo in DIRECTORY (recreated): a node and a real ETSI 014 key exchange."""
    from qkms.demo import run_single_node_demo

    if not run_single_node_demo(directory, Console(width=120)):
        raise SystemExit(1)


main.add_command(pki)
