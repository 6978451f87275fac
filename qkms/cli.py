"""The ``qkms`` command line for operators."""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.table import Table

from kms.config import check_files, load_config
from kms.errors import QkmsError
from qkms.cli_admin import admin
from qkms.cli_audit import audit
from qkms.cli_connect import connect
from qkms.cli_kek import kek
from qkms.cli_mock_device import mock_device
from qkms.cli_pki import pki
from qkms.device_layout import KINDS, MOCK_SIMULATION, plan_mock_pair
from qkms.layout import LINK_POLICIES, LINK_SOURCES, LinkPlan, NodePlan, free_port, write_layout
from qkms.pass_offsets import stagger_satellite_passes

DEFAULT_SAES = ("sae-1", "sae-2")
#: --link-source kinds fed by a pair of mock QKD devices (started by `qkms up`), and the
#: protocol the devices speak; every other kind is a source section of LINK_SOURCES.
MOCK_DEVICE_PROTOCOLS = {"mock-device": "etsi014", "mock-device-004": "etsi004"}
SOURCE_KINDS = sorted({*LINK_SOURCES, *MOCK_DEVICE_PROTOCOLS})


@dataclass(frozen=True)
class LinkDefaults:
    """What a link written by ``qkms init`` gets unless its spec says otherwise: the kind
    of its QKD source (a key of LINK_SOURCES), its policy, and a fibre length replacing
    the source's own (None: keep it)."""

    source: str = "simulated"
    policy: str = "qkd-only"
    length_km: float | None = None


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _Commands(click.Group):
    """The command group; the commands in LAZY are imported only when called (or listed),
    so that ``qkms serve``, the gunicorn master of a node's workers, never loads the
    simulator's NumPy, SciPy and numba."""

    LAZY = {"simulate": "qkms.cli_simulate"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            return getattr(importlib.import_module(self.LAZY[name]), name)
        return super().get_command(ctx, name)


@click.group(cls=_Commands)
@click.version_option(package_name="qkms")
def main() -> None:
    """qkms: quantum-safe key management (ETSI GS QKD 014 over mutual TLS)."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--node", "node_ids", multiple=True, help="KME_ID of a node (repeatable; default one node KME-1).")
@click.option("--link", "link_specs", multiple=True,
              help="A link between two nodes, NODE-NODE or NODE-NODE=SOURCE (repeatable).")
@click.option("--sae", "sae_specs", multiple=True,
              help="SAE to create: ID or ID@NODE (repeatable; default sae-1, sae-2 on a single node, "
                   "one sae-<node> per node in a network).")
@click.option("--length-km", type=float, default=None,
              help="Fibre length of the links (default: the source's own; satellites have none).")
@click.option("--link-source", type=click.Choice(SOURCE_KINDS), default="simulated", show_default=True,
              help="Key source of links without =SOURCE: simulated decoy BB84, entangled (BBM92), "
                   "repeater-chain, satellite, or a pair of mock QKD devices per link (mock-device: ETSI 014 "
                   "pull; mock-device-004: ETSI 004 push), started by `qkms up`.")
@click.option("--link-policy", type=click.Choice(LINK_POLICIES), default="qkd-only", show_default=True,
              help="Policy of every link: QKD only, QKD falling back to ML-KEM, both combined (hybrid), or "
                   "ML-KEM only (no QKD source). Links that use ML-KEM get ML-DSA keys, the peer's pinned.")
@click.option("--add-node", "added_nodes", multiple=True,
              help="DIRECTORY holds a network: add this node to it (repeatable; see `qkms admin add-node`).")
@click.option("--add-link", "added_links", multiple=True,
              help="DIRECTORY holds a network: add this link, NODE-NODE or NODE-NODE=SOURCE "
                   "(repeatable; see `qkms admin add-link`).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def init(directory: Path, node_ids: tuple[str, ...], link_specs: tuple[str, ...], sae_specs: tuple[str, ...],
         length_km: float | None, link_source: str, link_policy: str, added_nodes: tuple[str, ...],
         added_links: tuple[str, ...], as_json: bool) -> None:
    """Write a ready-to-run node or network (CA, certificates, KEKs, configs) into DIRECTORY,
    or, with --add-node/--add-link, new nodes and links into the network DIRECTORY holds."""
    link_defaults = LinkDefaults(link_source, link_policy, length_km)
    if added_nodes or added_links:
        _grow(directory, added_nodes, added_links, sae_specs, link_defaults, node_ids + link_specs, as_json)
        return
    if (directory / "manifest.json").exists():
        raise click.ClickException(f"{directory} already holds a qkms layout")
    try:
        plans, links = plan_network(node_ids or ("KME-1",), link_specs, sae_specs, link_defaults)
        manifest = write_layout(directory, plans, links)
    except (QkmsError, ValueError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from None
    if as_json:
        click.echo(json.dumps(manifest.to_dict(), indent=2))
        return
    _print_manifest(manifest.to_dict(), links)


def _grow(directory: Path, added_nodes, added_links, sae_specs, link_defaults: LinkDefaults,
          misplaced: tuple[str, ...], as_json: bool) -> None:
    from qkms.layout_additions import add_to_layout
    from qkms.runner import load_manifest

    if misplaced:
        raise click.UsageError("with --add-node/--add-link, give the new nodes and links only with those options")
    if not (directory / "manifest.json").exists():
        raise click.ClickException(f"{directory} holds no qkms layout to add to")
    try:
        all_nodes = tuple(load_manifest(directory)["nodes"]) + added_nodes
        sae_specs = sae_specs or tuple(f"sae-{node.lower()}@{node}" for node in added_nodes)
        plans = plan_network(added_nodes, (), sae_specs)[0] if added_nodes else []
        urls = {**{kme_id: node["url"] for kme_id, node in load_manifest(directory)["nodes"].items()},
                **{plan.kme_id: f"https://127.0.0.1:{plan.port}" for plan in plans}}
        links = [_link_plan(spec, all_nodes, link_defaults, urls, "--add-link") for spec in added_links]
        manifest = add_to_layout(directory, plans, links)
    except (QkmsError, ValueError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from None
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    console = Console()
    for plan in plans:
        console.print(f"node {plan.kme_id}: {manifest['nodes'][plan.kme_id]['config']} "
                      f"(SAEs: {', '.join(plan.sae_ids) or 'none'})")
    for link in links:
        console.print(_describe_link(link))
    console.print(f"next: qkms admin add-node {directory} NODE, qkms admin add-link {directory} LINK, "
                  "then start the new nodes (qkms serve --config ...)")


def plan_network(node_ids, link_specs, sae_specs,
                 link_defaults: LinkDefaults = LinkDefaults()) -> tuple[list[NodePlan], list[LinkPlan]]:
    """Turn --node/--link/--sae options into plans; ValueError names a bad option."""
    if len(set(node_ids)) != len(node_ids):
        raise ValueError("--node: each KME_ID once")
    saes: dict[str, list[str]] = {node: [] for node in node_ids}
    for spec in sae_specs:
        sae_id, _, node = spec.partition("@")
        node = node or (node_ids[0] if len(node_ids) == 1 else "")
        if node not in saes:
            raise ValueError(f"--sae {spec}: name its node as ID@NODE (one of {', '.join(node_ids)})")
        saes[node].append(sae_id)
    if not sae_specs:
        defaults = {node_ids[0]: list(DEFAULT_SAES)} if len(node_ids) == 1 else \
            {node: [f"sae-{node.lower()}"] for node in node_ids}
        saes.update(defaults)
    plans = [NodePlan(node, tuple(saes[node]), free_port()) for node in node_ids]
    urls = {plan.kme_id: f"https://127.0.0.1:{plan.port}" for plan in plans}
    return plans, stagger_satellite_passes([_link_plan(spec, node_ids, link_defaults, urls) for spec in link_specs])


def _link_plan(spec: str, node_ids, link_defaults: LinkDefaults, node_urls: dict[str, str],
               option: str = "--link") -> LinkPlan:
    """``NODE-NODE[=SOURCE]`` as a link plan: that source's section, or a pair of mock
    devices reaching the nodes at ``node_urls``."""
    ends, _, kind = spec.partition("=")
    kind = kind or link_defaults.source
    if kind not in SOURCE_KINDS:
        raise ValueError(f"{option} {spec}: unknown source {kind!r} (one of {', '.join(SOURCE_KINDS)})")
    nodes = _link_ends(ends, node_ids, option)
    simulated = dict(LINK_SOURCES["simulated"] if kind in MOCK_DEVICE_PROTOCOLS else LINK_SOURCES[kind])
    if link_defaults.length_km is not None and "length_km" in simulated:
        simulated["length_km"] = link_defaults.length_km
    if kind in MOCK_DEVICE_PROTOCOLS and link_defaults.policy == "pqc-only":
        raise ValueError(f"{option} {spec}: a pqc-only link has no QKD source for {kind} to feed")
    return link_plan(ends, nodes, kind, simulated, node_urls, link_defaults.policy)


def link_plan(link_id: str, nodes: tuple[str, str], link_source: str, simulated: dict,
              node_urls: dict[str, str], policy: str = "qkd-only", **device_options) -> LinkPlan:
    """The link with source section ``simulated``, or, for a mock-device kind, a link fed
    by a pair of mock devices whose own simulation has that section's length
    (``device_options``: more of ``qkms.device_layout.MockPairPlan``), under ``policy``."""
    protocol = MOCK_DEVICE_PROTOCOLS.get(link_source)
    if protocol is None:
        return LinkPlan(link_id, nodes, dict(simulated), policy)
    options = {"simulation": {**MOCK_SIMULATION, "length_km": simulated["length_km"]}, **device_options}
    devices = plan_mock_pair(link_id, nodes, [free_port() for _ in range(4)], protocol, node_urls, **options)
    return LinkPlan(link_id, nodes, {"kind": KINDS[protocol]}, policy, devices=devices)


def _link_ends(spec: str, node_ids, option: str = "--link") -> tuple[str, str]:
    for split in range(1, len(spec)):
        a, b = spec[:split], spec[split + 1:]
        if spec[split] == "-" and a in node_ids and b in node_ids and a != b:
            return a, b
    raise ValueError(f"{option} {spec}: expected NODE-NODE with two different nodes of the network")


def _print_manifest(manifest: dict, links: list[LinkPlan]) -> None:
    console = Console()
    nodes = Table("node", "url", "config", title="nodes")
    for kme_id, entry in manifest["nodes"].items():
        nodes.add_row(kme_id, entry["url"], entry["config"])
    saes = Table("SAE", "node", "certificate", title="SAEs")
    for sae_id, entry in manifest["saes"].items():
        saes.add_row(sae_id, entry["node"], entry["cert"])
    console.print(nodes, saes)
    for link in links:
        console.print(_describe_link(link))


def _describe_link(link: LinkPlan) -> str:
    kinds = [link.source["kind"]] * link.uses_qkd + [link.pqc["kind"]] * link.uses_pqc
    return f"link {link.link_id}: {link.nodes[0]} <-> {link.nodes[1]} ({link.policy}: {', '.join(kinds)})"


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def up(directory: Path) -> None:
    """Start every node of DIRECTORY (written by `qkms init`); Ctrl-C stops them all."""
    from qkms.runner import start_all, stop_all

    nodes = start_all(directory)
    # Before the announcement: a Ctrl-C once the nodes are announced reaches the loop below.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console = Console()
    for node in nodes:
        console.print(f"{node.kme_id} listening at {node.url} (log {node.log_path})")
    try:
        while not stop.wait(0.5) and all(n.process.poll() is None for n in nodes):
            pass
    finally:
        console.print("stopping all nodes")
        stop_all(nodes)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def serve(config_path: Path) -> None:
    """Run one node until SIGTERM or Ctrl-C."""
    from kms.node import check_kek
    from qkms.server import check_link_sources, ensure_listen_port_free, serve as run_node

    _configure_logging()
    try:
        config = load_config(config_path)
        check_files(config)
        check_kek(config)
        check_link_sources(config, config_path)
        ensure_listen_port_free(config)
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None
    run_node(config, config_path)


@main.command(hidden=True)
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--redis-url", help="The node's embedded Redis (otherwise its `redis` settings are used).")
@click.option("--parent-pid", type=int, help="Stop when this process (the node's `qkms serve`) exits.")
@click.option("--check", is_flag=True, help="Only validate the link sources (build them, start nothing): "
                                            "exit 2 with the bad setting's path on stderr.")
def linkd(config_path: Path, redis_url: str | None, parent_pid: int | None, check: bool) -> None:
    """The link manager of one node (started and supervised by `qkms serve`)."""
    from qkms.linkd import bind_to_parent, run_link_manager, validate_link_sources

    _configure_logging()
    if parent_pid is not None:
        bind_to_parent(parent_pid)
    if check:
        try:
            validate_link_sources(load_config(config_path))
        except QkmsError as exc:
            click.echo(exc.message, err=True)
            raise SystemExit(2) from None
        return
    config = load_config(config_path)
    settings = config.redis.reached_at(redis_url)
    if settings.embedded:
        raise click.UsageError("--redis-url is required for a node with an embedded Redis")
    run_link_manager(config, settings)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".demo")
@click.option("--keep-running", is_flag=True,
              help="Leave the network running afterwards, node B's dashboard served on loopback, until Ctrl-C.")
@click.option("--devices", is_flag=True, help="Feed link A-B from a pair of mock QKD devices (ETSI 014), "
                                               "and show a device fault and the recovery.")
def demo(directory: Path, keep_running: bool, devices: bool) -> None:
    """Run the demo in DIRECTORY (recreated): four nodes, QKD (simulated, or fed by mock
    devices), hybrid and ML-KEM links, ETSI 014 exchanges."""
    from qkms.demo import run_demo

    if not run_demo(directory, Console(width=130), keep_running, devices):
        raise SystemExit(1)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--node", "kme_id", help="The node whose dashboard to show (default: the first in the manifest).")
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="Loopback HOST:PORT to serve on (port 0: any free port).")
def dashboard(directory: Path, kme_id: str | None, listen: str) -> None:
    """Serve a running node's dashboard to a local browser: a loopback HTTP proxy that presents the
    administrator certificate of DIRECTORY (written by `qkms init`) to the node. Ctrl-C stops it."""
    from qkms.demo_dashboard import serve_until_interrupted
    from qkms.runner import load_manifest

    manifest = load_manifest(directory)
    host, _, port = listen.rpartition(":")
    try:
        serve_until_interrupted(manifest, kme_id or next(iter(manifest["nodes"])), Console(width=130),
                                host.strip("[]"), int(port))
    except (QkmsError, ValueError, OSError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from None


@main.command("demo-tls")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".demo-tls")
def demo_tls(directory: Path) -> None:
    """Run the TLS demo in DIRECTORY (recreated): OpenSSL TLS 1.3 sessions keyed by qkms over a relay."""
    from qkms.demo_tls import run_demo_tls

    if not run_demo_tls(directory, Console(width=150)):
        raise SystemExit(1)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--node", "kme_id", help="Ask this node (default: the first in the manifest).")
def links(directory: Path, kme_id: str | None) -> None:
    """Show every link's state, QBER, key rate and pool level, as a running node sees them,
    and the state of that node's link manager."""
    from qkms.link_status import fetch_link_state, link_table
    from qkms.runner import load_manifest

    manifest = load_manifest(directory)
    kme_id = kme_id or next(iter(manifest["nodes"]))
    try:
        state = fetch_link_state(manifest, kme_id)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"node {kme_id} did not answer: {exc}") from None
    Console(width=130).print(link_table(state))


main.add_command(admin)
main.add_command(audit)
main.add_command(connect)
main.add_command(kek)
main.add_command(mock_device)
main.add_command(pki)
