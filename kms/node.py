"""Assembling one node's domain objects (service, network) from its config and storage."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kms.admin import NetworkAdmin
from kms.config import NodeConfig
from kms.csprng_source import CsprngSource
from kms.link_exchange import LinkResponders
from kms.link_manager_state import LinkManagerState
from kms.network import KeyNetwork
from kms.errors import StoreError
from kms.relay import PeerTransport
from kms.runtime_config import RuntimeConfig, RuntimeView, apply_changes
from kms.sealing import Sealer, keyring_source
from kms.service import KeyService
from kms.sources import SourceContext
from kms.storage import Storage, StorageLimits

log = logging.getLogger("qkms.node")


def node_sealer(config: NodeConfig) -> Sealer:
    """The sealer of the node's key material, under the keyring its config names (a
    ``kek.file`` or ``kek.pkcs11.keyring`` is re-read when a rotation rewrites it)."""
    return Sealer(keyring_source(config.kek.file, config.kek.env, config.kek.pkcs11), config.kme_id)


def check_kek(config: NodeConfig) -> None:
    """Fail early, naming the setting, when the node's keyring cannot be read: a bad KEK
    file or variable, or an HSM whose module, token, PIN or keys are wrong (tried once
    here, not once per worker: an HSM may lock its PIN after a few wrong ones)."""
    node_sealer(config).current_kek_id


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


class NodeRuntime:
    """One process's node for its current runtime configuration (the file's with the
    admin changes, kms/runtime_config.py): rebuilt when the change log moves, checked
    with one small read per call. While the change log cannot be read, the last view
    (at first, the file's) stays in force."""

    def __init__(self, base: NodeConfig, storage: Storage, transport: PeerTransport | None):
        self.runtime = RuntimeConfig(base, storage.changes)
        self.storage = storage
        self.transport = transport
        self.admin = NetworkAdmin(self.runtime, transport)
        self._view: RuntimeView | None = None
        self._node: Node | None = None
        self._failing = False

    def current(self) -> tuple[RuntimeView, Node]:
        """The current view and the node assembled for it."""
        try:
            view = self.runtime.view()
        except StoreError:
            if not self._failing:
                log.warning("admin changes unreadable (Redis down?); keeping the current configuration")
            self._failing = True
            view = self._view or apply_changes(self.runtime.base, [], version=-1)
        else:
            self._failing = False
        if view is not self._view:
            if self.transport is not None:
                self.transport.reconfigure(view.config)
            transport = self.transport if view.config.peers else None
            self._node = assemble_node(view.config, self.storage, transport)
            self._view = view
        return view, self._node
