"""One hop's key material, from the pool(s) its policy chose (kms/policies.py).

QKD material comes from the link's pool, PQC material from ``<link>#pqc``; a hybrid
hop carves the key's size from each and combines them per key with CatKDF, bound to
the link, the key_ID, the SAEs and the link's source kinds (kms/catkdf.py). The
sender *carves* (as the owner of its half), the receiver *takes* the same segments;
both then hold the same pad per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kms.catkdf import HYBRID_ALGORITHM, hybrid_context, hybrid_pad
from kms.config import LinkConfig, NodeConfig
from kms.pools import PoolStore, Segment
from kms.routing import Hop


@dataclass(frozen=True)
class KeyParties:
    """Who a key is for: what a hybrid pad is bound to besides its key_ID and link."""

    master_id: str
    slave_ids: frozenset[str]


@dataclass(frozen=True, repr=False)
class HopPad:
    """One key's pad on one hop and where it came from (segments of each pool)."""

    key_id: str
    segments: tuple[Segment, ...]
    pqc_segments: tuple[Segment, ...]
    pad: bytes

    def __repr__(self) -> str:
        return f"HopPad(key_id={self.key_id!r})"


class HopMaterial:
    """Carves and takes pads for this node's hops."""

    def __init__(self, config: NodeConfig, pools: PoolStore):
        self._config = config
        self._pools = pools
        self._links = {link.id: link for link in config.links}

    def carve(self, hop: Hop, material: str, key_ids: Sequence[str], size_bytes: int,
              parties: KeyParties) -> list[HopPad]:
        """As the hop's sender: one pad per key, all or none (Unavailable if short)."""
        link, sizes = self._links[hop.link_id], [size_bytes] * len(key_ids)
        qkd = self._pools.carve(link.pool_id("qkd"), hop.sender, sizes) if material != "pqc" else None
        pqc = self._pools.carve(link.pool_id("pqc"), hop.sender, sizes) if material != "qkd" else None
        return [self._pad(hop, link, key_id, parties,
                          qkd[i].segments if qkd else (), qkd[i].material if qkd else None,
                          pqc[i].segments if pqc else (), pqc[i].material if pqc else None)
                for i, key_id in enumerate(key_ids)]

    def take(self, hop: Hop, material: str, keys: Sequence[tuple[str, tuple[Segment, ...], tuple[Segment, ...]]],
             parties: KeyParties) -> list[bytes]:
        """As the hop's receiver: the pads of ``keys`` ((key_id, segments, pqc_segments),
        segments naming the QKD pool, or the PQC pool on a pqc hop), all or none."""
        link = self._links[hop.link_id]
        main = link.pool_id("pqc" if material == "pqc" else "qkd")
        firsts = self._pools.take_segments(main, hop.sender, [k[1] for k in keys])
        if material != "hybrid":
            return firsts
        seconds = self._pools.take_segments(link.pool_id("pqc"), hop.sender, [k[2] for k in keys])
        return [self._pad(hop, link, key_id, parties, (), q, (), p).pad
                for (key_id, _, _), q, p in zip(keys, firsts, seconds)]

    def _pad(self, hop: Hop, link: LinkConfig, key_id: str, parties: KeyParties, qkd_segments, qkd: bytes | None,
             pqc_segments, pqc: bytes | None) -> HopPad:
        if qkd is not None and pqc is not None:
            context = hybrid_context(link.id, key_id, parties.master_id, sorted(parties.slave_ids),
                                     hybrid_algorithms(link))
            return HopPad(key_id, qkd_segments, pqc_segments, hybrid_pad(qkd, pqc, context, hop.sender, hop.receiver))
        if qkd is not None:
            return HopPad(key_id, qkd_segments, (), qkd)
        return HopPad(key_id, pqc_segments, (), pqc)


def hybrid_algorithms(link: LinkConfig) -> tuple[str, ...]:
    """What a hybrid key of ``link`` is bound to as its algorithms: the combiner and the
    kinds of the link's two sources, from configuration (the same at both ends)."""
    return HYBRID_ALGORITHM, f"qkd:{link.source['kind']}", f"pqc:{link.pqc['kind']}"
