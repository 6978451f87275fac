"""Installers by name: the ``qkms connect`` subcommands (a plain map of factories)."""

from __future__ import annotations

from adapters.connectors.file_sink import FileSinkInstaller, TlsPskInstaller
from adapters.connectors.installer import KeyInstaller
from adapters.connectors.strongswan import StrongSwanInstaller
from adapters.connectors.wireguard import WireGuardInstaller

INSTALLERS: dict[str, type[KeyInstaller]] = {
    "wireguard": WireGuardInstaller,
    "strongswan": StrongSwanInstaller,
    "tls-psk": TlsPskInstaller,
    "file": FileSinkInstaller,
}
