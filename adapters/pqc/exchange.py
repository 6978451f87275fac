"""Both roles of the ML-KEM link exchange: the initiator's offer and completion, the
responder's checks and answer. A message that fails any check yields no block:

* malformed, or naming another link, node, algorithm or block size: BadRequest (400);
* signed with a key whose fingerprint is not the pinned peer key: Unauthorized (401);
* a signature that does not verify (tampered): Conflict (409);
* a sequence not above every one the responder accepted before (replayed or
  reordered): Conflict (409), recorded in the node's sequence ledger only after the
  signature verified, so forged messages cannot burn sequences.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from adapters.pqc.kem import KemKeyPair
from adapters.pqc.settings import MlKemLink
from adapters.pqc.transcript import (ANSWER, ANSWER_FIELDS, OFFER, OFFER_FIELDS, VERSION, Transcript, b64, b64decode,
                                     check_shape, derive_block, offer_digest, signed_bytes)
from kms.errors import BadRequest, Conflict, Unauthorized
from kms.keys import KeyBlock
from kms.sequence_ledger import SequenceLedger


@dataclass(frozen=True, repr=False)
class PendingOffer:
    """An offer sent, with the ephemeral key pair that completes it (used once)."""

    message: dict[str, Any]
    key_pair: KemKeyPair

    def __repr__(self) -> str:
        return f"PendingOffer(sequence={self.message['sequence']})"


class SequenceClock:
    """Offer sequences: microseconds of wall-clock time, strictly increasing, alternating
    in parity so that both halves of the link's pool fill (kms/pools.owner_of). Time-based
    so that they keep increasing across restarts of the initiator."""

    def __init__(self, clock=time.time_ns):
        self._clock = clock
        self._last: int | None = None

    def next(self) -> int:
        sequence = self._clock() // 1000
        if self._last is not None:
            sequence = max(sequence, self._last + 1)
            if sequence % 2 == self._last % 2:
                sequence += 1
        self._last = sequence
        return sequence


def make_offer(link: MlKemLink, sequence: int) -> PendingOffer:
    """A signed offer with a fresh encapsulation key (forward secrecy: one per block)."""
    settings = link.settings
    key_pair = link.backend.keygen(settings.kem)
    message = {"type": OFFER, "version": VERSION, "link": link.link_id, "initiator": link.kme_id,
               "responder": link.peer, "kem": settings.kem, "signature_algorithm": settings.signature,
               "exchange_id": str(uuid.uuid4()), "sequence": sequence, "block_bytes": settings.block_bytes,
               "encapsulation_key": b64(key_pair.encapsulation_key),
               "signer_key_sha256": link.signing_key.fingerprint}
    message["signature"] = b64(link.signing_key.sign(signed_bytes(message)))
    return PendingOffer(message, key_pair)


def _check_signed(link: MlKemLink, message: dict[str, Any]) -> None:
    if message["signer_key_sha256"] != link.peer_key.fingerprint:
        raise Unauthorized(f"ml-kem {message['type']}: signed by an ML-DSA key that is not pinned for {link.peer}")
    if not link.peer_key.verifies(b64decode(message["signature"], "signature"), signed_bytes(message)):
        raise Conflict(f"ml-kem {message['type']}: the signature does not verify (tampered)")


def _check_offer_fits(link: MlKemLink, offer: dict[str, Any]) -> None:
    settings = link.settings
    expected = {"link": link.link_id, "initiator": link.peer, "responder": link.kme_id, "kem": settings.kem,
                "signature_algorithm": settings.signature, "block_bytes": settings.block_bytes}
    wrong = sorted(name for name, value in expected.items() if offer[name] != value)
    if wrong or link.is_initiator:
        raise BadRequest(f"ml-kem offer: {', '.join(wrong) or 'initiator'} differ from this node's link settings")


def answer_offer(link: MlKemLink, ledger: SequenceLedger, message: Any) -> tuple[dict[str, Any], KeyBlock]:
    """The responder: check the offer, accept its sequence once, encapsulate, sign the
    answer over the whole transcript and derive the block."""
    offer = check_shape(message, OFFER_FIELDS, OFFER)
    _check_offer_fits(link, offer)
    _check_signed(link, offer)
    if not ledger.advance(link.link_id, offer["sequence"]):
        raise Conflict(f"ml-kem offer: sequence {offer['sequence']} is not above the last one accepted "
                       f"({ledger.newest(link.link_id)}): replayed or reordered")
    try:
        sealed = link.backend.encapsulate(link.settings.kem, b64decode(offer["encapsulation_key"], "encapsulation_key"))
    except ValueError:
        raise BadRequest("ml-kem offer: malformed encapsulation key") from None
    answer = {"type": ANSWER, "version": VERSION, "link": link.link_id, "exchange_id": offer["exchange_id"],
              "sequence": offer["sequence"], "offer_sha256": offer_digest(offer),
              "ciphertext": b64(sealed.ciphertext), "signer_key_sha256": link.signing_key.fingerprint}
    answer["signature"] = b64(link.signing_key.sign(signed_bytes(answer)))
    material = derive_block(sealed.shared_secret, Transcript(offer, answer))
    return answer, KeyBlock(f"{link.link_id}:{offer['sequence']}", material, offer["sequence"])


def complete_offer(link: MlKemLink, pending: PendingOffer, message: Any) -> KeyBlock:
    """The initiator: check the answer to ``pending`` and derive the same block."""
    answer = check_shape(message, ANSWER_FIELDS, ANSWER)
    offer = pending.message
    quoted = {"link": offer["link"], "exchange_id": offer["exchange_id"], "sequence": offer["sequence"],
              "offer_sha256": offer_digest(offer)}
    wrong = sorted(name for name, value in quoted.items() if answer[name] != value)
    if wrong:
        raise Conflict(f"ml-kem answer: {', '.join(wrong)} do not match the offer")
    _check_signed(link, answer)
    try:
        secret = link.backend.decapsulate(link.settings.kem, pending.key_pair,
                                          b64decode(answer["ciphertext"], "ciphertext"))
    except ValueError:
        raise BadRequest("ml-kem answer: malformed ciphertext") from None
    material = derive_block(secret, Transcript(offer, answer))
    return KeyBlock(f"{link.link_id}:{offer['sequence']}", material, offer["sequence"])
