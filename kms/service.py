"""The key service: status, enc_keys and dec_keys as domain operations.

It knows nothing of HTTP or Redis; the API layer hands it authenticated SAE ids and
validated requests, and maps its exceptions to protocol errors.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kms import audit
from kms.config import NodeConfig
from kms.errors import BadRequest, ExtensionNotSupported, ExtensionOptionsNotMet, Unavailable
from kms.keys import Key, KeyOrder, KeyRequest, Reservation
from kms.link_manager_state import LinkManagerState, LinkManagerStatus
from kms.network import KeyNetwork
from kms.sources import KeySource
from kms.policies import REQUIREMENT_EXTENSIONS, requirement_names
from kms.store import KeyStore


@dataclass(frozen=True)
class KeyStatus:
    """What ETSI 014 ``status`` reports for one master/slave pair (sizes in bits)."""

    source_kme_id: str
    target_kme_id: str
    master_sae_id: str
    slave_sae_id: str
    key_size_bits: int
    stored_key_count: int
    max_key_count: int
    max_keys_per_request: int
    max_key_size_bits: int
    min_key_size_bits: int
    max_sae_id_count: int
    extension: dict[str, Any] = field(default_factory=dict)


class KeyService:
    """Serves keys for the SAEs attached to one node."""

    def __init__(self, config: NodeConfig, store: KeyStore, local_source: KeySource,
                 network: KeyNetwork | None = None, link_manager: LinkManagerState | None = None):
        self._config = config
        self._store = store
        self._local_source = local_source
        self._network = network
        self._link_manager = link_manager
        self._identities = {sae.identity: sae.id for sae in config.saes}

    @property
    def kme_id(self) -> str:
        return self._config.kme_id

    def sae_for_identity(self, identity: str | None) -> str | None:
        """The SAE whose certificate carries ``identity``, or None."""
        return self._identities.get(identity) if identity is not None else None

    def status(self, master_id: str, slave_id: str) -> KeyStatus:
        """Status of the key supply from ``master_id`` to ``slave_id`` (``target`` is the slave's node)."""
        target = self._node_of_slave(slave_id, master_id)
        limits = self._config.limits
        if target == self.kme_id:
            stored = max(0, min(limits.max_key_count - self._store.pending_count(),
                                limits.max_pending_keys_per_sae - self._store.pending_count(master_id)))
            extension = {"kind": self._local_source.kind, "state": self._local_source.health().state}
        else:
            route, keys = self._network.route_capacity(target, limits.key_size_bits)
            stored = min(limits.max_key_count, keys)
            extension = {"route": [self.kme_id, *(hop.receiver for hop in route)] if route else []}
        return KeyStatus(
            self.kme_id, target, master_id, slave_id, limits.key_size_bits,
            stored, limits.max_key_count, limits.max_keys_per_request,
            limits.max_key_size_bits, limits.min_key_size_bits, limits.max_sae_id_count,
            {"qkms_source": extension, "qkms_link_manager": self.link_manager_status().to_dict()},
        )

    def link_manager_status(self) -> LinkManagerStatus:
        """Whether the link manager that fills this node's link pools is running."""
        if self._link_manager is None:
            return LinkManagerStatus("absent")
        return self._link_manager.status()

    def enc_keys(self, master_id: str, slave_id: str, request: KeyRequest) -> list[Key]:
        """New keys for ``master_id``, reserved for ``slave_id`` and any additional slaves,
        on whatever nodes they are attached to. All slaves' nodes hold the keys before
        this returns; on failure none does."""
        slaves, requires = self._validate(master_id, slave_id, request)
        local, remote = self._split_by_node(slaves)
        ttl_s = self._config.reservation_ttl_s
        if local and requires:
            # Keys between SAEs of one node come from its CSPRNG: neither QKD nor PQC.
            raise ExtensionOptionsNotMet(details=[{"extension_mandatory": requirement_names(requires),
                                                   "target_KME_ID": self.kme_id}])
        if not remote:
            keys = self._new_keys(request.number, request.size_bits)
            self._reserve_here(master_id, local, keys, None)
        else:
            keys, delivery = self._network.deliver(KeyOrder(master_id, remote, request.number,
                                                            request.size_bits, ttl_s, requires))
            try:
                self._reserve_here(master_id, local, keys, delivery.request_id)
            except Exception:
                self._network.cancel(delivery)
                raise
        audit.record("enc_keys", master_id, [k.key_id for k in keys], slaves=sorted(slaves),
                     size_bits=request.size_bits, nodes=sorted([*remote, *([self.kme_id] if local else [])]),
                     provenance=keys[0].provenance.to_dict(), requires=sorted(requires))
        return keys

    def _split_by_node(self, slaves: frozenset[str]) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
        """Slaves on this node, and the other slaves by their node."""
        by_node: dict[str, set[str]] = {}
        for slave in slaves:
            by_node.setdefault(self._config.node_of_sae(slave), set()).add(slave)
        local = frozenset(by_node.pop(self.kme_id, ()))
        return local, {node: frozenset(saes) for node, saes in by_node.items()}

    def _reserve_here(self, master_id: str, slaves: frozenset[str], keys: list[Key], request_id: str | None) -> None:
        if slaves:
            self._store.reserve([Reservation(key, master_id, slaves) for key in keys],
                                self._config.reservation_ttl_s, request_id)

    def dec_keys(self, slave_id: str, master_id: str, key_ids: Sequence[str]) -> list[Key]:
        """The keys ``master_id`` obtained earlier, for their slave ``slave_id``; all or none."""
        if not key_ids:
            raise BadRequest("key_IDs must list at least one key_ID")
        if len(set(key_ids)) != len(key_ids):
            raise BadRequest("key_IDs must not repeat a key_ID")
        if len(key_ids) > self._config.limits.max_keys_per_request:
            raise BadRequest(f"at most {self._config.limits.max_keys_per_request} key_IDs per request")
        if self._config.node_of_sae(master_id) is None:
            raise BadRequest("unknown master_SAE_ID", [{"master_SAE_ID": master_id}])
        keys = self._store.claim(key_ids, slave_id, master_id)
        audit.record("dec_keys", slave_id, key_ids, master=master_id,
                     provenance=[key.provenance.to_dict() for key in keys])
        return keys

    def _node_of_slave(self, slave_id: str, master_id: str) -> str:
        node = self._config.node_of_sae(slave_id)
        if node is None:
            raise BadRequest("unknown slave_SAE_ID", [{"slave_SAE_ID": slave_id}])
        if slave_id == master_id:
            raise BadRequest("slave_SAE_ID must differ from the master SAE")
        if node != self.kme_id and self._network is None:
            raise Unavailable("this node has no KM channel to the slave's node")
        return node

    def _validate(self, master_id: str, slave_id: str, request: KeyRequest) -> tuple[frozenset[str], frozenset[str]]:
        """(every slave, the kinds of source the request requires); all checks before any
        key material is touched."""
        self._node_of_slave(slave_id, master_id)
        requires = requirements(request.extension_mandatory)
        self._validate_size(request)
        return self._slaves(master_id, slave_id, request.additional_slave_ids), requires

    def _validate_size(self, request: KeyRequest) -> None:
        limits = self._config.limits
        if request.size_bits % 8:
            raise BadRequest("size shall be a multiple of 8")
        if not limits.min_key_size_bits <= request.size_bits <= limits.max_key_size_bits:
            raise BadRequest(f"size must be between {limits.min_key_size_bits} and "
                             f"{limits.max_key_size_bits} bits")
        if not 1 <= request.number <= limits.max_keys_per_request:
            raise BadRequest(f"number must be between 1 and {limits.max_keys_per_request}")

    def _slaves(self, master_id: str, slave_id: str, additional: Sequence[str]) -> frozenset[str]:
        if len(additional) > self._config.limits.max_sae_id_count:
            raise BadRequest(f"at most {self._config.limits.max_sae_id_count} additional_slave_SAE_IDs")
        slaves = [slave_id, *additional]
        if len(set(slaves)) != len(slaves):
            raise BadRequest("additional_slave_SAE_IDs must not repeat a slave")
        for extra in additional:
            self._node_of_slave(extra, master_id)
        return frozenset(slaves)

    def _new_keys(self, number: int, size_bits: int) -> list[Key]:
        size_bytes = size_bits // 8
        blocks = self._local_source.fetch(number * size_bits)
        material = b"".join(block.material for block in blocks)
        if len(material) < number * size_bytes:
            raise Unavailable()
        provenance = self._local_source.provenance
        return [Key(str(uuid.uuid4()), material[i * size_bytes:(i + 1) * size_bytes], provenance)
                for i in range(number)]


def requirements(extension_mandatory) -> frozenset[str]:
    """The kinds of source ``extension_mandatory`` requires: ``{"qkms_require_qkd": true}``
    and ``{"qkms_require_pqc": true}`` (false requires nothing). Any other name, or a
    value that is not a boolean, is a parameter this node does not support (400)."""
    options = [(name, value) for ext in extension_mandatory for name, value in ext.items()]
    unsupported = sorted({name for name, value in options
                          if name not in REQUIREMENT_EXTENSIONS or not isinstance(value, bool)})
    if unsupported:
        raise ExtensionNotSupported(details=[{"extension_mandatory": unsupported}])
    return frozenset(REQUIREMENT_EXTENSIONS[name] for name, value in options if value)
