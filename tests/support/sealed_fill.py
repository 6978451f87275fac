"""A node's storage filled with every kind of sealed value (reservations, pool blocks,
inbox blocks), and the digests of what they hold, to compare before and after a KEK
rotation without showing any key material."""

from __future__ import annotations

import hashlib
import os
import uuid

from kms.keys import Key, KeyBlock, Provenance, Reservation
from kms.sealed_items import SealedItems
from kms.sealing import Sealer
from kms.storage import Storage

LINK = "A--B"
OWNER = "A"


def digest(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()


def fill(storage: Storage, reservations: int = 12, pool_blocks: int = 8, inbox_blocks: int = 5) -> dict[str, str]:
    """Store sealed values of every kind; returns identity -> digest of the material."""
    expected: dict[str, str] = {}
    keys = [Key(str(uuid.uuid4()), os.urandom(32), Provenance(("csprng",))) for _ in range(reservations)]
    storage.store.reserve([Reservation(key, "sae-1", frozenset({"sae-2"})) for key in keys], ttl_s=3600)
    expected |= {key.key_id: digest(key.material) for key in keys}
    blocks = [KeyBlock(f"{LINK}:{seq}", os.urandom(64), seq) for seq in range(pool_blocks)]
    storage.pools.add_blocks(LINK, OWNER, blocks)
    expected |= {f"pool|{LINK}|{block.block_id}": digest(block.material) for block in blocks}
    waiting = [KeyBlock(f"in:{seq}", os.urandom(48), seq) for seq in range(inbox_blocks)]
    storage.inbox.put(LINK, waiting)
    expected |= {f"inbox|{LINK}|{block.block_id}": digest(block.material) for block in waiting}
    return expected


def stored_digests(items: SealedItems, sealer: Sealer) -> dict[str, str]:
    """identity -> digest of every sealed value, unsealed with ``sealer`` (fails if any
    does not unseal)."""
    return {item.identity: digest(sealer.unseal(item.sealed, item.identity))
            for batch in items.batches(7) for item in batch}
