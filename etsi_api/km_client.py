"""The KM channel's client side: PeerTransport over HTTPS with the node's certificate.

Relay requests carry a request_id, so a retry after a lost answer is recognised by
the peer and never carves or reserves twice. Only transport failures and 503s are
retried: any other answer (a 409 for a chain that already failed, a 400 or 401) is
final.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import httpx

from adapters.etsi014_client import client_tls_context
from etsi_api import km_wire
from kms.changes import Change
from kms.config import NodeConfig
from kms.errors import BadRequest, Unavailable
from kms.link_board import LinkHalf
from kms.relay import PeerTransport, RelayRequest

log = logging.getLogger("qkms.km")

RETRY_DELAYS_S = (0.05, 0.2, 0.5)


class HttpPeerTransport(PeerTransport):
    """One keep-alive HTTPS client per peer, mutual TLS with this node's certificate."""

    def __init__(self, config: NodeConfig, http_transport: httpx.BaseTransport | None = None):
        """``http_transport`` stands in for the network (tests pass an ``httpx.MockTransport``)."""
        self._context = client_tls_context(config.tls.ca, config.tls.cert, config.tls.key)
        self._timeout_s = config.km_timeout_s
        self._http_transport = http_transport
        self._clients: dict[str, httpx.Client] = {}
        self.reconfigure(config)

    def reconfigure(self, config: NodeConfig) -> None:
        """A client for every peer ``config`` lists that has none yet, or whose URL changed."""
        for peer in config.peers:
            base_url = peer.url.rstrip("/") + "/km/v1/"
            if peer.kme_id not in self._clients or str(self._clients[peer.kme_id].base_url) != base_url:
                self._clients = {**self._clients, peer.kme_id: httpx.Client(
                    base_url=base_url, verify=self._context, timeout=self._timeout_s,
                    transport=self._http_transport)}

    def _client(self, peer: str) -> httpx.Client:
        client = self._clients.get(peer)
        if client is None:
            raise Unavailable(f"no KM channel to {peer}")
        return client

    def _call(self, peer: str, method: str, path: str, body: Any = None, retries: int = len(RETRY_DELAYS_S),
              quiet: bool = False) -> Any:
        for attempt in range(retries + 1):
            try:
                response = self._client(peer).request(method, path, json=body)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        reason = "200 with a body that is not JSON"
                        break
                reason = f"{response.status_code} {_message(response)}"
                if response.status_code != 503:
                    break
            if attempt < retries:
                time.sleep(RETRY_DELAYS_S[attempt])
        log.log(logging.DEBUG if quiet else logging.WARNING, "KM %s %s at %s failed: %s", method, path, peer, reason)
        raise Unavailable(f"peer {peer} did not accept the request")

    def relay(self, peer: str, request: RelayRequest) -> None:
        self._call(peer, "POST", "relay", km_wire.relay_to_json(request))

    def abort(self, peer: str, request_id: str) -> None:
        self._call(peer, "POST", "abort", {"request_id": request_id})

    def sync_pool(self, peer: str, link_id: str, owner: str, sequence: int, offset: int) -> None:
        self._call(peer, "POST", "pool/sync", {"link": link_id, "owner": owner, "sequence": sequence,
                                               "offset": offset}, retries=0)

    def push_halves(self, peer: str, halves: list[LinkHalf], changes_digest: str) -> str:
        """Quiet when it fails: the link manager rate-limits its own report of unreachable peers."""
        body = {**km_wire.halves_to_json(halves), "changes_digest": changes_digest}
        answer = self._call(peer, "POST", "links", body, retries=0, quiet=True)
        theirs = answer.get("changes_digest") if isinstance(answer, dict) else None
        if not isinstance(theirs, str):
            raise Unavailable(f"peer {peer} sent a malformed answer to a link-state push")
        return theirs

    def push_changes(self, peer: str, changes: list[Change]) -> None:
        self._call(peer, "POST", "changes", km_wire.changes_to_json(changes), retries=1)

    def fetch_changes(self, peer: str) -> list[Change]:
        try:
            return km_wire.changes_from_json(self._call(peer, "GET", "changes", retries=0))
        except BadRequest as exc:
            log.warning("KM GET changes at %s: malformed answer (%s)", peer, exc.message)
            raise Unavailable(f"peer {peer} sent malformed changes") from None

    def exchange(self, peer: str, link_id: str, message: dict) -> dict:
        try:
            response = self._client(peer).post(f"links/{quote(link_id, safe='')}/exchange", json=message)
        except httpx.TransportError as exc:
            raise Unavailable(f"peer {peer} unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise Unavailable(f"peer {peer} answered {response.status_code}: {_message(response)}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise Unavailable(f"peer {peer} sent a malformed answer")
        return answer

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return ""
