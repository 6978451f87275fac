"""Conversations between the two ends of a link's key source (kms/link_exchange.py and
the KM endpoint POST /km/v1/links/{link_id}/exchange): the answering end is built once,
only for the link's other end, and the blocks it makes wait in its inbox.

The source here is a minimal two-party source written for this test: both ends derive
a block from a shared secret and a nonce the initiator sends (never the material)."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask

from etsi_api import errors, km_api
from etsi_api.auth import PEER_CERT_ENVIRON_KEY
from kms.config import parse_config
from kms.errors import BadRequest, Unauthorized
from kms.keys import KeyBlock, Provenance
from kms.link_exchange import LinkResponders, TransportLinkChannel
from kms.pki import CertificateAuthority
from kms.source_registry import BUILTIN_SOURCES
from kms.sources import KeySource, LinkChannel, SourceContext, SourceHealth
from kms.storage import open_memory_storage

SECRET = os.urandom(32)
LINK = "A-B"


class NoncePairSource(KeySource):
    """Initiator (lower KME_ID) sends a nonce; both ends derive HMAC(secret, nonce)."""

    kind = "nonce-pair"
    on_demand = False
    built = 0

    def __init__(self, context: SourceContext):
        self._context = context
        NoncePairSource.built += 1

    @classmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "NoncePairSource":
        return cls(context)

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        if self._context.channel is None:
            return self._context.inbox.take(self._context.link_id, 16)
        nonce = os.urandom(16).hex()
        answer = self._context.channel.exchange({"nonce": nonce, "sequence": 2})
        assert answer == {"stored": True}
        return [block(nonce, 2)]

    def respond(self, message: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(message.get("nonce"), str):
            raise BadRequest("nonce missing")
        self._context.inbox.put(self._context.link_id, [block(message["nonce"], message["sequence"])])
        return {"stored": True}

    def health(self) -> SourceHealth:
        return SourceHealth("up")

    @property
    def provenance(self) -> Provenance:
        return Provenance(("test",))


def block(nonce: str, sequence: int) -> KeyBlock:
    return KeyBlock(f"{LINK}:{nonce}", hmac.new(SECRET, nonce.encode(), hashlib.sha256).digest(), sequence)


def config(node: str, kind: str = "nonce-pair"):
    others = [n for n in ("A", "B", "C") if n != node]
    return parse_config({
        "kme_id": node, "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"}, "kek": {"file": "k"},
        "peers": [{"kme_id": o, "url": "https://127.0.0.1:1"} for o in others],
        "links": [{"id": LINK, "nodes": ["A", "B"], "source": {"kind": kind}},
                  {"id": "B-C", "nodes": ["B", "C"], "source": {"kind": "csprng"}}],
    })


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(BUILTIN_SOURCES, NoncePairSource.kind, NoncePairSource)
    NoncePairSource.built = 0


class ResponderChannel(LinkChannel):
    """The KM channel as a direct call into B's responders."""

    def __init__(self, responders: LinkResponders, caller: str):
        self._responders, self._caller = responders, caller

    def exchange(self, message):
        return self._responders.respond(LINK, self._caller, message)


def test_both_ends_hold_the_same_block_after_one_exchange() -> None:
    storage_b = open_memory_storage("B")
    responders = LinkResponders(config("B"), storage_b.inbox)
    initiator = NoncePairSource(SourceContext("A", "B", LINK, channel=ResponderChannel(responders, "A")))
    answering_linkd_end = NoncePairSource(SourceContext("B", "A", LINK, inbox=storage_b.inbox))
    (mine,) = initiator.fetch(1 << 20)
    (theirs,) = answering_linkd_end.fetch(1 << 20)
    assert (mine.block_id, mine.sequence) == (theirs.block_id, theirs.sequence)
    assert mine.material == theirs.material, "the two ends derived different blocks"
    assert answering_linkd_end.fetch(1 << 20) == []


def test_the_answering_end_is_built_once_per_link() -> None:
    responders = LinkResponders(config("B"), open_memory_storage("B").inbox)
    for _ in range(3):
        responders.respond(LINK, "A", {"nonce": "ab", "sequence": 2})
    assert NoncePairSource.built == 1


@pytest.mark.parametrize("link, caller, error", [
    ("A-C", "A", BadRequest), ("B-C", "A", Unauthorized), (LINK, "C", Unauthorized), (LINK, "B", Unauthorized),
], ids=["unknown link", "not an end of the link", "a third node", "the node itself"])
def test_only_the_other_end_of_a_local_link_may_talk(link, caller, error) -> None:
    responders = LinkResponders(config("B"), open_memory_storage("B").inbox)
    with pytest.raises(error):
        responders.respond(link, caller, {"nonce": "ab", "sequence": 2})
    assert NoncePairSource.built == 0


def test_a_source_without_a_conversation_refuses_messages() -> None:
    responders = LinkResponders(config("B"), open_memory_storage("B").inbox)
    with pytest.raises(BadRequest, match="takes no messages"):
        responders.respond("B-C", "C", {"nonce": "ab"})


def test_the_channel_names_the_peer_and_the_link() -> None:
    calls = []

    class Recording:
        def exchange(self, peer, link_id, message):
            calls.append((peer, link_id, message))
            return {"ok": True}

    assert TransportLinkChannel(Recording(), "B", LINK).exchange({"x": 1}) == {"ok": True}
    assert calls == [("B", LINK, {"x": 1})]


# --- the KM endpoint ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates():
    ca = CertificateAuthority.create("test CA")
    return {node: ca.issue_node_certificate(node).certificate.public_bytes(serialization.Encoding.DER)
            for node in ("A", "C")}


def km_app(responders: LinkResponders | None) -> Flask:
    app = Flask("km-exchange-test")
    app.config.update(QKMS_NODE_CONFIG=config("B"))
    if responders is not None:
        app.extensions["qkms.responders"] = responders
    errors.init_app(app)
    app.register_blueprint(km_api.bp)
    return app


def post(app: Flask, caller_der: bytes, link: str, body) -> Any:
    return app.test_client().post(f"/km/v1/links/{link}/exchange", json=body,
                                  environ_base={PEER_CERT_ENVIRON_KEY: caller_der})


def test_the_endpoint_hands_the_message_to_the_answering_end(certificates) -> None:
    storage_b = open_memory_storage("B")
    app = km_app(LinkResponders(config("B"), storage_b.inbox))
    response = post(app, certificates["A"], LINK, {"nonce": "cafe", "sequence": 4})
    assert response.status_code == 200 and response.get_json() == {"stored": True}
    assert storage_b.inbox.waiting(LINK) == 1


@pytest.mark.parametrize("caller, link, body, status", [
    ("C", LINK, {"nonce": "cafe", "sequence": 4}, 401),
    ("A", "nowhere", {"nonce": "cafe", "sequence": 4}, 400),
    ("A", LINK, {"sequence": 4}, 400),
    ("A", LINK, [1, 2], 400),
], ids=["third node", "unknown link", "malformed message", "not an object"])
def test_the_endpoint_refuses_and_changes_nothing(certificates, caller, link, body, status) -> None:
    storage_b = open_memory_storage("B")
    response = post(km_app(LinkResponders(config("B"), storage_b.inbox)), certificates[caller], link, body)
    assert response.status_code == status and "message" in response.get_json()
    assert storage_b.inbox.waiting(LINK) == 0


def test_a_node_without_links_has_no_one_to_answer(certificates) -> None:
    response = post(km_app(None), certificates["A"], LINK, {"nonce": "cafe", "sequence": 4})
    assert response.status_code == 400
