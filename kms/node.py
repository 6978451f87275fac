"""Assembling one node's domain objects (service, network) from its config and storage."""

from __future__ import annotations

from dataclasses import dataclass

from kms.config import NodeConfig
from kms.csprng_source import CsprngSource
from kms.link_exchange import LinkResponders
from kms.link_manager_state import LinkManagerState
from kms.network import KeyNetwork
from kms.relay import PeerTransport
from kms.sealing import Sealer, keyring_source
from kms.service import KeyService
from kms.sources import SourceContext
from kms.storage import Storage, StorageLimits


def node_sealer(config: NodeConfig) -> Sealer:
    """The sealer of the node's key material, under the keyring its config names (a
    ``kek.file`` is re-read when a rotation rewrites it)."""
    return Sealer(keyring_source(config.kek.file, config.kek.env), config.kme_id)


def storage_limits(config: NodeConfig) -> StorageLimits:
    """What the node's store enforces: ``limits.max_key_count`` and the per-SAE quota."""
    return StorageLimits(config.limits.max_key_count, config.limits.max_pending_keys_per_sae)


@dataclass
class Node:
    """Everything one node process needs to serve keys; close() releases it."""

    config: NodeConfig
    storage: Storage
    service: KeyService
    network: KeyNetwork | None = None
    responders: LinkResponders | None = None

    def close(self) -> None:
        self.storage.close()


def assemble_node(config: NodeConfig, storage: Storage, transport: PeerTransport | None = None) -> Node:
    """The node's service (and, with a KM channel ``transport``, its network) on ``storage``.

    Keys between SAEs of this node come straight from the operating system's CSPRNG;
    a link's key source is loaded only when its peer end first talks to it."""
    network = (KeyNetwork(config, storage.store, storage.pools, storage.board, transport)
               if transport is not None else None)
    local_source = CsprngSource(SourceContext(kme_id=config.kme_id))
    link_manager = LinkManagerState.for_node(storage.link_manager, config)
    responders = LinkResponders(config, storage.inbox, storage.ledger) if config.local_links() else None
    service = KeyService(config, storage.store, local_source, network, link_manager)
    return Node(config, storage, service, network, responders)
