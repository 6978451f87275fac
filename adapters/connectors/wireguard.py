"""WireGuard: the key becomes the peer's preshared key (``wg set``).

The PSK reaches ``wg`` on its standard input (``preshared-key /dev/stdin``), never on a
command line or on disk. WireGuard mixes the PSK in at each handshake, so a new PSK
keys the next handshake (a session rekeys every 120 s while traffic flows); sessions
already up keep their keys until then, which is why rotating faster than 120 s only
wastes keys. ``fail_closed`` sets a random PSK and re-creates the peer, which ends
its current session at once: nothing passes until both ends hold the same qkms key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from adapters.connectors.errors import ConnectorError
from adapters.connectors.installer import KeyInstaller, run_command

#: WireGuard's REKEY_AFTER_TIME: rotating faster than this wastes keys (tests lower it).
WIREGUARD_MIN_INTERVAL_S = 120.0
APPLY_MODES = ("next-handshake", "immediately")


@dataclass(frozen=True)
class PeerSettings:
    """What re-creating a peer must restore (from ``wg show <dev> dump``; no key)."""

    endpoint: str | None
    allowed_ips: str
    persistent_keepalive: str | None


class WireGuardInstaller(KeyInstaller):
    """PSK of one peer of one WireGuard device."""

    application = "wireguard"
    key_bytes = 32

    def __init__(self, device: str, peer_public_key: str, apply: str = "next-handshake", wg: str = "wg"):
        if apply not in APPLY_MODES:
            raise ConnectorError(f"apply must be one of {', '.join(APPLY_MODES)}")
        self.device = device
        self.peer = peer_public_key
        self.apply = apply
        self.wg = wg

    def install(self, key: bytes, key_id: str) -> None:
        self.check_key(key)
        if self.apply == "immediately":
            self._recreate_peer(key)
        else:
            self._set_psk(key)

    def fail_closed(self) -> None:
        self._recreate_peer(self.random_key())

    def _set_psk(self, key: bytes, *extra: str) -> None:
        run_command([self.wg, "set", self.device, "peer", self.peer, "preshared-key", "/dev/stdin", *extra],
                    stdin=base64.b64encode(key) + b"\n")

    def _recreate_peer(self, key: bytes) -> None:
        """Remove the peer and add it back with ``key``: its session ends at once."""
        settings = self.peer_settings()
        run_command([self.wg, "set", self.device, "peer", self.peer, "remove"])
        extra = ["allowed-ips", settings.allowed_ips]
        if settings.endpoint:
            extra += ["endpoint", settings.endpoint]
        if settings.persistent_keepalive:
            extra += ["persistent-keepalive", settings.persistent_keepalive]
        self._set_psk(key, *extra)

    def peer_settings(self) -> PeerSettings:
        """The peer's endpoint, allowed IPs and keepalive (ConnectorError if no such peer)."""
        dump = run_command([self.wg, "show", self.device, "dump"])
        for line in dump.splitlines()[1:]:  # the first line is the interface's
            fields = line.split("\t")
            if len(fields) == 8 and fields[0] == self.peer:
                endpoint, allowed, keepalive = fields[2], fields[3], fields[7]
                return PeerSettings(None if endpoint == "(none)" else endpoint,
                                    "" if allowed == "(none)" else allowed,
                                    None if keepalive == "off" else keepalive)
        raise ConnectorError(f"WireGuard device {self.device} has no peer {self.peer}")
