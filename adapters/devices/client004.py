"""A KMS's client of an ETSI GS QKD 004 push-mode device (the AIT API: open-connect,
get-key, close under ``/api/v1/kms/etsi004``), over mutual TLS with the device's
certificate checked for ``server_name``. Every failure is a DeviceFault: an ETSI 004
status the device answered (``status004``), or the device unreachable, slow or
answering what the API does not define."""

from __future__ import annotations

from typing import Any

import httpx

from adapters.devices import status004
from adapters.devices.errors import DeviceFault, reaching_device
from adapters.devices.settings import Etsi004Settings
from adapters.etsi014_client import client_tls_context

DEVICE_PATH = "/api/v1/kms/etsi004/"
#: Success codes of each call (AIT etsi_004_push_mode_qkd_server.yaml).
SUCCESS = {"open-connect": 201, "get-key": 205, "close": 204}


class Qkd004Client:
    def __init__(self, settings: Etsi004Settings, transport: httpx.BaseTransport | None = None):
        self._settings = settings
        self._transport = transport
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            s = self._settings
            try:
                verify = client_tls_context(s.ca, s.cert, s.key)
            except (OSError, ValueError) as exc:
                raise DeviceFault("tls_files", f"cannot load the device's TLS files: {exc}") from None
            self._http = httpx.Client(base_url=s.url.rstrip("/") + DEVICE_PATH, verify=verify, timeout=s.timeout_s,
                                      transport=self._transport)
        return self._http

    def open_connect(self, source: str, destination: str, qos: dict[str, Any],
                     key_stream_id: str | None = None) -> tuple[str, int, dict[str, Any]]:
        """(key_stream_id, status 0 or 1, the QoS the device granted)."""
        body: dict[str, Any] = {"source": source, "destination": destination, "qos": qos}
        if key_stream_id:
            body["key_stream_id"] = key_stream_id
        answer = self._call("POST", "open-connect", body)
        ksid = answer.get("key_stream_id")
        if not isinstance(ksid, str) or not ksid:
            raise DeviceFault("malformed", "the device answered open-connect without a key_stream_id")
        granted = answer.get("qos") if isinstance(answer.get("qos"), dict) else qos
        return ksid, answer["status"], granted

    def get_key(self, key_stream_id: str, index: int) -> int:
        return self._call("GET", "get-key", {"key_stream_id": key_stream_id, "index": index})["status"]

    def close(self, key_stream_id: str) -> None:
        self._call("PUT", "close", {"key_stream_id": key_stream_id})

    def _call(self, method: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        extensions = {"sni_hostname": self._settings.server_name} if self._settings.server_name else {}
        with reaching_device(self._settings.url, self._settings.timeout_s, operation):
            response = self._client().request(method, operation, json=body, extensions=extensions)
        if response.status_code == SUCCESS[operation] and operation == "close":
            return {"status": 0}
        try:
            answer = response.json()
        except ValueError:
            answer = None
        code = answer.get("status") if isinstance(answer, dict) else None
        if isinstance(code, bool) or not isinstance(code, int):
            raise DeviceFault("malformed", f"the device answered {operation} with HTTP {response.status_code} "
                                           f"and no ETSI 004 status")
        if response.status_code != SUCCESS[operation] or code not in (0, 1):
            raise status004.fault(code, operation)
        return answer

    def close_connections(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
