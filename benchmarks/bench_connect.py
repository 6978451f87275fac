#!/usr/bin/env python3
"""Time from ``enc_keys`` to the key installed at both ends, for a WireGuard tunnel
(wireguard-go in two network namespaces, ``wg set``) and for a TLS PSK pair (PSK files).

Three real nodes A-B-C (link material injected), the initiator's SAE at A and the
responder's at C, so every key is relayed through B. The agents run in this process
(the same code as ``qkms connect``) and each rotation's phases are timed:
enc_keys (node A, relay to C) -> announce -> the responder's dec_keys and install ->
ack -> the initiator's install. Prints JSON.

    .venv/bin/python benchmarks/bench_connect.py --rotations 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.connectors.agent import AgentSettings, InitiatorAgent, ResponderAgent  # noqa: E402
from adapters.connectors.channel import ChannelClient, ChannelServer, SaeCredentials  # noqa: E402
from adapters.connectors.file_sink import TlsPskInstaller  # noqa: E402
from adapters.connectors.wireguard import WireGuardInstaller  # noqa: E402
from tests.support.network import LocalNetwork  # noqa: E402

LINK = {"kind": "simulated", "preset": "snspd-illustrative", "length_km": 10,
        "pulses_per_frame": 3_000_000, "frame_interval_s": 10.0}
SAES = {"A": ("app-a",), "B": (), "C": ("app-c",)}


def credentials(net: LocalNetwork, sae_id: str) -> SaeCredentials:
    sae = net.manifest["saes"][sae_id]
    return SaeCredentials(Path(sae["cert"]), Path(sae["key"]), Path(net.manifest["ca"]))


def measure(net: LocalNetwork, make_installers, rotations: int) -> dict:
    installer_a, installer_c = make_installers()
    responder = ResponderAgent(installer_c, net.client("app-c"), AgentSettings("bench", "app-a"))
    server = ChannelServer(("127.0.0.1", 0), credentials(net, "app-c"), "app-a", responder.routes(), responder.status)
    server.start()
    try:
        initiator = InitiatorAgent(installer_a, net.client("app-a"), AgentSettings("bench", "app-c"),
                                   ChannelClient(f"127.0.0.1:{server.address[1]}", credentials(net, "app-a"), "app-c"))
        samples = []
        for _ in range(rotations):
            if not initiator.rotate():
                raise RuntimeError(f"rotation failed: {initiator.status()['reason']}")
            samples.append(initiator.timings_ms)
        initiator.withdraw("benchmark over")
    finally:
        server.stop()
    return summarise(samples)


def summarise(samples: list[dict]) -> dict:
    out = {}
    for phase in samples[0]:
        values = sorted(s[phase] for s in samples)
        out[phase] = {"p50_ms": round(statistics.median(values), 1),
                      "p90_ms": round(values[int(0.9 * (len(values) - 1))], 1), "max_ms": round(values[-1], 1)}
    return out


def wireguard_installers(log_dir: Path):
    from tests.support.netns import WireGuardTunnel, _namespace_problem

    problem = _namespace_problem()
    if problem:
        raise RuntimeError(problem)
    tunnel = WireGuardTunnel(log_dir).start()
    return tunnel, lambda: (WireGuardInstaller(tunnel.a.name, tunnel.b.public_key),
                            WireGuardInstaller(tunnel.b.name, tunnel.a.public_key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rotations", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        net = LocalNetwork(root / "net", SAES, [("A", "B"), ("B", "C")], LINK)
        tunnel = None
        try:
            net.start()
            net.inject("A", "B", 1 << 22)
            net.inject("B", "C", 1 << 22)
            net.wait_for_keys(net.client("app-a"), "app-c", args.rotations + 4, timeout_s=120)
            report = {"rotations": args.rotations, "route": "A-B-C (relayed through B)",
                      "tls_psk_files": measure(net, lambda: (TlsPskInstaller(root / "a" / "psk"),
                                                             TlsPskInstaller(root / "c" / "psk")), args.rotations)}
            try:
                tunnel, make = wireguard_installers(root)
                report["wireguard_wg_set"] = measure(net, make, args.rotations)
            except RuntimeError as exc:
                report["wireguard_wg_set"] = f"skipped: {exc}"
        finally:
            if tunnel is not None:
                tunnel.stop()
            net.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
