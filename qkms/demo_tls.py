"""``make demo-tls``: a real TLS 1.3 session (OpenSSL s_server/s_client) keyed by qkms.

Three nodes A-B-C with simulated QKD links; a TLS client's SAE at A and a TLS server's
SAE at C, so every key is relayed through B. A connector agent pair (the initiator
beside the client, the responder beside the server) agrees each PSK and writes it as
``<key_ID>:<hex>``; OpenSSL then completes a TLS 1.3 PSK handshake with it, once per
rotation; after the agents fail closed the handshake is refused. Prints key_IDs,
timings and outcomes, never keys.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.connectors.agent import AgentSettings, InitiatorAgent, ResponderAgent
from adapters.connectors.channel import ChannelClient, ChannelServer, SaeCredentials
from adapters.connectors.file_sink import TlsPskInstaller
from adapters.connectors.openssl_psk import CIPHERSUITE, s_client_exchange, start_s_server
from adapters.connectors.tls_psk_helper import read_psk
from qkms.layout import DEMO_LINK_SOURCE, LinkPlan, NodePlan, free_port, write_layout
from qkms.runner import sae_client, start_all, stop_all, stop_process, wait_for_keys

NODES = {"A": ("tls-client",), "B": (), "C": ("tls-server",)}
LINKS = (("A", "B"), ("B", "C"))
ROTATIONS = 2


def run_demo_tls(directory: Path, console: Console) -> bool:
    """Create ``directory`` afresh, run the network and the TLS sessions; True if all went as expected."""
    shutil.rmtree(directory, ignore_errors=True)
    plans = [NodePlan(kme_id, saes, free_port()) for kme_id, saes in NODES.items()]
    manifest = write_layout(directory, plans, [LinkPlan(f"{a}-{b}", (a, b), dict(DEMO_LINK_SOURCE))
                                               for a, b in LINKS]).to_dict()
    console.print(f"[bold]wrote[/] 3 nodes (A-B-C), 2 simulated QKD links, SAEs tls-client@A and tls-server@C "
                  f"under {directory}")
    nodes = start_all(directory)
    try:
        with sae_client(manifest, "tls-client") as kme_a, sae_client(manifest, "tls-server") as kme_c:
            with console.status("waiting for the simulated QKD links to fill the pools ..."):
                wait_for_keys(kme_a, "tls-server", 4, timeout_s=180)
            return _sessions(directory, manifest, kme_a, kme_c, console)
    finally:
        stop_all(nodes)
        console.print("all nodes stopped")


def _credentials(manifest: dict, sae_id: str) -> SaeCredentials:
    sae = manifest["saes"][sae_id]
    return SaeCredentials(Path(sae["cert"]), Path(sae["key"]), Path(manifest["ca"]))


def _sessions(directory: Path, manifest: dict, kme_a, kme_c, console: Console) -> bool:
    files = directory / "tls" / "client" / "web.psk", directory / "tls" / "server" / "web.psk"
    responder = ResponderAgent(TlsPskInstaller(files[1]), kme_c, AgentSettings("web", "tls-client"))
    server = ChannelServer(("127.0.0.1", 0), _credentials(manifest, "tls-server"), "tls-client",
                           responder.routes(), responder.status)
    server.start()
    try:
        initiator = InitiatorAgent(TlsPskInstaller(files[0]), kme_a, AgentSettings("web", "tls-server"),
                                   ChannelClient(f"127.0.0.1:{server.address[1]}",
                                                 _credentials(manifest, "tls-client"), "tls-server"))
        initiator.fail_closed("starting")
        responder.fail_closed("starting")
        table = Table("rotation", "PSK identity = key_ID", "same PSK\nat both ends", "enc_keys ->\ninstalled at both",
                      "TLS session", "data", title="OpenSSL s_client (SAE tls-client @A) -> s_server (SAE tls-server @C)")
        table.columns[1].no_wrap = True
        ok = True
        for _ in range(ROTATIONS):
            ok &= initiator.rotate()
            ok &= _session_row(table, initiator, files)
        initiator.withdraw("demo over: failing closed")
        status, _ = _handshake(files)
        refused = status != 0
        console.print(table)
        console.print(f"after the agents failed closed (random PSKs): handshake "
                      f"{'refused, as it must be' if refused else '[red]SUCCEEDED[/]'}")
        return ok and refused
    finally:
        server.stop()


def _handshake(files) -> tuple[int, bytes]:
    (identity_c, key_c), (identity_a, key_a) = read_psk(files[1]), read_psk(files[0])
    port = free_port()
    server = start_s_server(port, identity_c, key_c)
    try:
        return s_client_exchange(port, identity_a, key_a, b"hello over qkms\n")
    finally:
        stop_process(server, timeout_s=5)


def _session_row(table: Table, initiator: InitiatorAgent, files) -> bool:
    (identity, key_a), (_, key_c) = read_psk(files[0]), read_psk(files[1])
    same = hashlib.sha256(key_a).digest() == hashlib.sha256(key_c).digest()
    status, reply = _handshake(files)
    good = status == 0 and reply.strip() == b"smkq revo olleh"
    table.add_row(str(initiator.sequence), identity, "yes" if same else "NO",
                  f"{initiator.timings_ms.get('enc_keys_to_installed_at_both', 0):.1f} ms",
                  f"TLSv1.3 {CIPHERSUITE} (PSK)" if good else "FAILED",
                  f"'hello over qkms' -> {reply.strip().decode(errors='replace')!r}")
    return same and good
