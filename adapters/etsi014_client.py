"""A small ETSI GS QKD 014 client over mutual TLS, with connection reuse.

Used by SAE-side connectors, by vendor-device adapters (a KME is the device's SAE),
by the demo and by the tests. It never logs key material.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from kms.errors import QkmsError
from kms.pki.tls import client_context


class Etsi014Error(QkmsError):
    """A non-200 answer from a KME: ``status`` and the ETSI Error ``body``."""

    def __init__(self, status: int, body: Any):
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"KME answered {status}: {message or 'no message'}")
        self.status = status
        self.body = body


@dataclass(frozen=True, repr=False)
class DeliveredKey:
    """A key as an SAE receives it (``material`` decoded from Base64)."""

    key_id: str
    material: bytes
    extension: dict

    def __repr__(self) -> str:
        return f"DeliveredKey(key_id={self.key_id!r}, size_bits={len(self.material) * 8})"


class Etsi014Client:
    """One SAE talking to one KME; keeps its TLS connection alive between calls."""

    def __init__(self, base_url: str, cert: Path | str, key: Path | str, ca: Path | str,
                 timeout_s: float = 30.0):
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1/keys/",
                                  verify=client_tls_context(ca, cert, key), timeout=timeout_s)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A raw request relative to ``/api/v1/keys/`` (for tests of error paths)."""
        return self._http.request(method, path, **kwargs)

    def _json(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            raise Etsi014Error(response.status_code, body)
        return body

    def status(self, slave_sae_id: str) -> dict:
        return self._json(self._http.get(f"{_quote(slave_sae_id)}/status"))

    def enc_keys(self, slave_sae_id: str, number: int = 1, size_bits: int | None = None,
                 additional_slaves: Sequence[str] = (), use_get: bool = False,
                 extension_mandatory: Sequence[dict] = ()) -> list[DeliveredKey]:
        """Ask for new keys as master SAE (POST, or GET with query parameters);
        ``extension_mandatory`` e.g. ``[{"qkms_require_qkd": True}]`` (POST only)."""
        body: dict[str, Any] = {"number": number}
        if size_bits is not None:
            body["size"] = size_bits
        path = f"{_quote(slave_sae_id)}/enc_keys"
        if use_get:
            response = self._http.get(path, params=body)
        else:
            if additional_slaves:
                body["additional_slave_SAE_IDs"] = list(additional_slaves)
            if extension_mandatory:
                body["extension_mandatory"] = list(extension_mandatory)
            response = self._http.post(path, json=body)
        return _keys(self._json(response))

    def dec_keys(self, master_sae_id: str, key_ids: Sequence[str], use_get: bool = False) -> list[DeliveredKey]:
        """Fetch keys by ID as slave SAE (POST, or GET for a single key_ID)."""
        path = f"{_quote(master_sae_id)}/dec_keys"
        if use_get:
            (key_id,) = key_ids
            response = self._http.get(path, params={"key_ID": key_id})
        else:
            response = self._http.post(path, json={"key_IDs": [{"key_ID": k} for k in key_ids]})
        return _keys(self._json(response))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Etsi014Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def client_tls_context(ca: Path | str, cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """Client context trusting ``ca`` and presenting ``cert``/``key``, with qkms's TLS
    policy (TLS >= 1.2, forward-secret AEAD suites only; kms.pki.tls)."""
    return client_context(ca, cert, key)


def _quote(sae_id: str) -> str:
    return quote(sae_id, safe="")


def _keys(body: dict) -> list[DeliveredKey]:
    return [DeliveredKey(k["key_ID"], base64.b64decode(k["key"], validate=True), k.get("key_extension") or {})
            for k in body["keys"]]
