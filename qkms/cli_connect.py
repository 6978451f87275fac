"""``qkms connect``: run one agent of a connector pair beside its application."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click
import yaml

from adapters.connectors.agent import AgentSettings, InitiatorAgent, ResponderAgent
from adapters.connectors.channel import ChannelClient, ChannelServer, SaeCredentials, parse_address
from adapters.connectors.errors import ConnectorError
from adapters.connectors.installer import KeyInstaller
from adapters.connectors.registry import INSTALLERS
from adapters.connectors.wireguard import APPLY_MODES, WIREGUARD_MIN_INTERVAL_S
from adapters.etsi014_client import Etsi014Client
from kms.errors import QkmsError

PathType = click.Path(dir_okay=False, path_type=Path)


@click.group()
def connect() -> None:
    """Run a connector agent beside an application, as its SAE: one of a pair (see docs/connectors.md)."""


def agent_options(command):
    """The options every connector shares: who this SAE is, its node, its peer, timing."""
    options = [
        click.option("--role", type=click.Choice(["initiator", "responder"]), required=True,
                     help="initiator: calls enc_keys and announces; responder: calls dec_keys."),
        click.option("--tunnel", required=True, help="Name of the tunnel/session pair (the same at both ends)."),
        click.option("--peer-sae", required=True, help="SAE_ID of the peer agent."),
        click.option("--kme-url", help="This SAE's node (https://host:port)."),
        click.option("--cert", type=PathType, help="This SAE's certificate."),
        click.option("--key", "key_file", type=PathType, help="This SAE's private key."),
        click.option("--ca", type=PathType, help="The network's CA certificate."),
        click.option("--manifest", type=click.Path(file_okay=False, path_type=Path),
                     help="Take --kme-url/--cert/--key/--ca from a `qkms init` directory (with --sae)."),
        click.option("--sae", "sae_id", help="This SAE's ID in --manifest."),
        click.option("--peer-agent", help="HOST:PORT of the responding agent (initiator)."),
        click.option("--listen", help="HOST:PORT to serve the channel (responder) or status (initiator) on."),
        click.option("--interval-s", type=float, default=120.0, show_default=True, help="Rotation interval."),
        click.option("--retry-s", type=float, default=10.0, show_default=True, help="Retry after a failure."),
        click.option("--grace-s", type=float, default=30.0, show_default=True,
                     help="The responder fails closed when no new key came interval+grace after the last."),
        click.option("--size-bits", type=int, default=256, show_default=True, help="Key size asked of qkms."),
        click.option("--sae-id-field", default="subject_cn", show_default=True,
                     help="Certificate field naming SAEs (as the nodes' tls.sae_id_field)."),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


@connect.command()
@agent_options
@click.option("--device", required=True, help="WireGuard interface (e.g. wg0).")
@click.option("--peer-public-key", required=True, help="The peer's WireGuard public key.")
@click.option("--apply", type=click.Choice(APPLY_MODES), default="next-handshake", show_default=True,
              help="next-handshake: the next (re)handshake uses the new PSK; immediately: end the session now.")
@click.option("--wg", default="wg", show_default=True, help="The wg command.")
@click.option("--min-interval-s", type=float, default=WIREGUARD_MIN_INTERVAL_S, show_default=True,
              help="Refuse faster rotation (WireGuard rekeys every 120 s); lower it only for tests.")
def wireguard(device, peer_public_key, apply, wg, min_interval_s, **common) -> None:
    """WireGuard: the key becomes the peer's preshared key."""
    if common["interval_s"] < min_interval_s:
        raise click.ClickException(f"--interval-s must be at least {min_interval_s:g} s "
                                   "(WireGuard rekeys every 120 s; see --min-interval-s)")
    run_agent(lambda: INSTALLERS["wireguard"](device, peer_public_key, apply, wg), common)


@connect.command()
@agent_options
@click.option("--vici-socket", default="/var/run/charon.vici", show_default=True, help="charon's VICI socket.")
@click.option("--conn", "conn_file", type=PathType,
              help="Initiator: a YAML/JSON file {name: settings} in VICI load-conn form; the agent sets "
                   "ppk_id/ppk_required and (re)establishes the IKE_SA after each rotation.")
@click.option("--ike", help="Responder: the connection name whose IKE_SAs end when failing closed.")
def strongswan(vici_socket, conn_file, ike, **common) -> None:
    """strongSwan: the key becomes an RFC 8784 PPK with PPK_ID = key_ID, over VICI."""
    conn = yaml.safe_load(conn_file.read_text()) if conn_file else None
    run_agent(lambda: INSTALLERS["strongswan"](common["role"], vici_socket, conn, ike), common)


@connect.command("tls-psk")
@agent_options
@click.option("--psk-file", type=PathType, required=True, help="Where to keep '<key_ID>:<hex key>' (0600, 0700 dir).")
@click.option("--hook", help="Command run after each rotation (e.g. restart openssl s_server).")
def tls_psk(psk_file, hook, **common) -> None:
    """TLS 1.3 external PSK: identity = key_ID (OpenSSL, stunnel, Python 3.13 ssl)."""
    run_agent(lambda: INSTALLERS["tls-psk"](psk_file, hook), common)


@connect.command("file")
@agent_options
@click.option("--path", "key_path", type=PathType, required=True, help="The key file (0600, in a 0700 directory).")
@click.option("--format", "key_format", type=click.Choice(["raw", "hex", "base64", "identity-hex"]),
              default="raw", show_default=True)
@click.option("--key-bytes", type=int, default=32, show_default=True, help="Length of the derived key.")
@click.option("--hook", help="Command run after each rotation, with QKMS_KEY_FILE, QKMS_KEY_ID, QKMS_KEY_STATE.")
def file_sink(key_path, key_format, key_bytes, hook, **common) -> None:
    """Any other application: the key in a file, rotated, with a hook."""
    run_agent(lambda: INSTALLERS["file"](key_path, key_bytes, key_format, hook), common)


def _identity(common: dict) -> tuple[str, SaeCredentials]:
    if common["manifest"]:
        manifest = json.loads((common["manifest"] / "manifest.json").read_text())
        sae = manifest["saes"].get(common["sae_id"] or "")
        if sae is None:
            raise click.ClickException("--manifest needs --sae naming one of its SAEs")
        url = manifest["nodes"][sae["node"]]["url"]
        cert, key, ca = sae["cert"], sae["key"], manifest["ca"]
    else:
        url, cert, key, ca = common["kme_url"], common["cert"], common["key_file"], common["ca"]
        if not all((url, cert, key, ca)):
            raise click.ClickException("give --kme-url, --cert, --key and --ca (or --manifest and --sae)")
    return url, SaeCredentials(Path(cert), Path(key), Path(ca), common["sae_id_field"])


def run_agent(make_installer, common: dict) -> None:
    """Build the agent and run it until SIGTERM/SIGINT (each end then fails closed)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    url, credentials = _identity(common)
    settings = AgentSettings(common["tunnel"], common["peer_sae"], common["interval_s"], common["retry_s"],
                             common["grace_s"], common["size_bits"])
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        installer: KeyInstaller = make_installer()
        with Etsi014Client(url, credentials.cert, credentials.key, credentials.ca, timeout_s=10) as kme:
            _run(installer, kme, settings, credentials, common, stop)
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None


def _run(installer, kme, settings, credentials, common, stop) -> None:
    listen = parse_address(common["listen"]) if common["listen"] else None
    if common["role"] == "responder":
        if listen is None:
            raise ConnectorError("the responder needs --listen HOST:PORT")
        agent = ResponderAgent(installer, kme, settings)
        server = ChannelServer(listen, credentials, settings.peer_sae, agent.routes(), agent.status)
        click.echo(f"responder for tunnel {settings.tunnel} listening on {server.address[0]}:{server.address[1]}")
        agent.run(stop, server)
        return
    if not common["peer_agent"]:
        raise ConnectorError("the initiator needs --peer-agent HOST:PORT")
    agent = InitiatorAgent(installer, kme, settings, ChannelClient(common["peer_agent"], credentials, settings.peer_sae))
    server = ChannelServer(listen, credentials, settings.peer_sae, {}, agent.status) if listen else None
    if server:
        server.start()
    try:
        agent.run(stop)
    finally:
        if server:
            server.stop()
