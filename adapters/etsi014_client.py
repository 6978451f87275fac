"""A small ETSI GS QKD 014 client over mutual TLS, with connection reuse.

Used by SAE-side connectors, by vendor-device adapters (a node is its QKD device's
SAE: ``adapters/devices``), by the demo and by the tests. It never logs key material.

What it promises its callers:

- every call either returns what ETSI 014 defines (a status object, a list of
  :class:`DeliveredKey`) or raises: :class:`Etsi014Error` for an answer other than 200
  (``status``, the ETSI Error ``body``, and ``retry_after_s`` when a 503 names one),
  :class:`Etsi014ProtocolError` (a subclass, ``status`` 200) for a 200 whose body is
  not what the standard defines (not JSON, no ``keys`` array, a ``key`` that is not
  standard Base64...), and ``httpx.TransportError`` (``httpx.TimeoutException``
  among them) when the KME cannot be reached or answers too slowly;
- the KME's certificate is always verified, hostname included: ``server_name`` names
  the identity expected in it when that is not the URL's host (a device reached by
  IP address whose certificate carries a DNS name). Verification is never switched
  off.
"""

from __future__ import annotations

import base64
import binascii
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
    """A non-200 answer from a KME: ``status`` and the ETSI Error ``body``;
    ``retry_after_s`` is the answer's Retry-After (seconds), if it gave one."""

    def __init__(self, status: int, body: Any, retry_after_s: float | None = None, message: str | None = None):
        text = body.get("message") if isinstance(body, dict) else None
        super().__init__(message or f"KME answered {status}: {str(text)[:200] if text else 'no message'}")
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s


class Etsi014ProtocolError(Etsi014Error):
    """A 200 answer whose body is not what ETSI GS QKD 014 defines (``what`` says how)."""

    def __init__(self, what: str):
        super().__init__(200, None, message=f"KME answered 200 with a malformed body: {what}")
        self.what = what


@dataclass(frozen=True, repr=False)
class DeliveredKey:
    """A key as an SAE receives it (``material`` decoded from Base64)."""

    key_id: str
    material: bytes
    extension: dict

    def __repr__(self) -> str:
        return f"DeliveredKey(key_id={self.key_id!r}, size_bits={len(self.material) * 8})"


class Etsi014Client:
    """One SAE talking to one KME; keeps its TLS connection alive between calls.

    ``server_name``: the name the KME's certificate must carry, if not the URL's host
    (sent as SNI and checked against the certificate). ``transport`` stands in for the
    network (tests pass an ``httpx.WSGITransport`` or ``httpx.MockTransport``)."""

    def __init__(self, base_url: str, cert: Path | str, key: Path | str, ca: Path | str,
                 timeout_s: float = 30.0, server_name: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1/keys/",
                                  verify=client_tls_context(ca, cert, key), timeout=timeout_s, transport=transport)
        self._extensions = {"sni_hostname": server_name} if server_name else {}

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A raw request relative to ``/api/v1/keys/`` (for tests of error paths)."""
        return self._http.request(method, path, extensions=self._extensions, **kwargs)

    def _json(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
            if response.status_code == 200:
                raise Etsi014ProtocolError("the body is not JSON") from None
        if response.status_code != 200:
            raise Etsi014Error(response.status_code, body, _retry_after_s(response))
        return body

    def status(self, slave_sae_id: str) -> dict:
        body = self._json(self.request("GET", f"{_quote(slave_sae_id)}/status"))
        if not isinstance(body, dict):
            raise Etsi014ProtocolError("the status is not a JSON object")
        return body

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
            response = self.request("GET", path, params=body)
        else:
            if additional_slaves:
                body["additional_slave_SAE_IDs"] = list(additional_slaves)
            if extension_mandatory:
                body["extension_mandatory"] = list(extension_mandatory)
            response = self.request("POST", path, json=body)
        return _keys(self._json(response))

    def dec_keys(self, master_sae_id: str, key_ids: Sequence[str], use_get: bool = False) -> list[DeliveredKey]:
        """Fetch keys by ID as slave SAE (POST, or GET for a single key_ID)."""
        path = f"{_quote(master_sae_id)}/dec_keys"
        if use_get:
            (key_id,) = key_ids
            response = self.request("GET", path, params={"key_ID": key_id})
        else:
            response = self.request("POST", path, json={"key_IDs": [{"key_ID": k} for k in key_ids]})
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


def _retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delay form only; an HTTP date is ignored)."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isascii() and value.isdecimal() else None


def _keys(body: Any) -> list[DeliveredKey]:
    """The keys of a Key container, checked entry by entry (never echoing a key)."""
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise Etsi014ProtocolError("no 'keys' array")
    return [_key(entry, index) for index, entry in enumerate(body["keys"])]


def _key(entry: Any, index: int) -> DeliveredKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("key_ID"), str) or not isinstance(entry.get("key"), str):
        raise Etsi014ProtocolError(f"keys[{index}] lacks a key_ID or key string")
    extension = entry.get("key_extension")
    if extension is not None and not isinstance(extension, dict):
        raise Etsi014ProtocolError(f"keys[{index}].key_extension is not an object")
    try:
        material = base64.b64decode(entry["key"], validate=True)
    except (binascii.Error, ValueError):
        raise Etsi014ProtocolError(f"keys[{index}].key is not standard Base64") from None
    return DeliveredKey(entry["key_ID"], material, extension or {})
