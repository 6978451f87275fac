"""ETSI 014 response bodies, with the field names spelled verbatim, in one place."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from kms.keys import Key
from kms.service import KeyStatus


def key_container(keys: Sequence[Key]) -> dict:
    """Key container: lowercase ``keys``, Base64 ``key``, provenance in a qkms_ extension."""
    return {"keys": [
        {"key_ID": key.key_id, "key": base64.b64encode(key.material).decode("ascii"),
         "key_extension": {"qkms_provenance": key.provenance.to_dict()}}
        for key in keys
    ]}


def status(info: KeyStatus) -> dict:
    """Status object."""
    return {
        "source_KME_ID": info.source_kme_id,
        "target_KME_ID": info.target_kme_id,
        "master_SAE_ID": info.master_sae_id,
        "slave_SAE_ID": info.slave_sae_id,
        "key_size": info.key_size_bits,
        "stored_key_count": info.stored_key_count,
        "max_key_count": info.max_key_count,
        "max_key_per_request": info.max_keys_per_request,
        "max_key_size": info.max_key_size_bits,
        "min_key_size": info.min_key_size_bits,
        "max_SAE_ID_count": info.max_sae_id_count,
        "status_extension": info.extension,
    }
