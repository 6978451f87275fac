"""The ML-KEM link exchange (adapters/pqc/exchange.py, transcript.py, signing.py): both
ends derive the same block; a tampered, replayed, reordered or unpinned message is
refused and yields no block. Blocks are compared by digest."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest

from adapters.pqc.exchange import SequenceClock, answer_offer, complete_offer, make_offer
from adapters.pqc.settings import MlKemLink, parse_link
from adapters.pqc.transcript import b64, b64decode
from kms.errors import BadRequest, ConfigError, Conflict, Unauthorized
from kms.sequence_ledger import SequenceLedger
from kms.sources import SourceContext
from kms.storage import open_memory_storage
from tests.support.pqc import PQC_SECTION, end_files, write_files

A, B, LINK = "KME-A", "KME-B", "A-B#pqc"


def make_link(root: Path, me: str, peer: str, pinned: str | None = None, signer: str | None = None,
              **settings) -> MlKemLink:
    files = end_files(signer or me, peer, pinned=pinned)
    write_files(root / me, files)
    section = {k: v for k, v in {**PQC_SECTION, **settings}.items() if k != "kind"}
    return parse_link(section, SourceContext(me, peer, LINK, str(root / me)))


@pytest.fixture
def ends(tmp_path: Path) -> tuple[MlKemLink, MlKemLink, SequenceLedger]:
    return make_link(tmp_path, A, B), make_link(tmp_path, B, A), open_memory_storage(B).ledger


def digest(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()


def test_both_ends_derive_the_same_block(ends) -> None:
    initiator, responder, ledger = ends
    pending = make_offer(initiator, 1000)
    answer, theirs = answer_offer(responder, ledger, copy.deepcopy(pending.message))
    mine = complete_offer(initiator, pending, answer)
    assert (mine.block_id, mine.sequence) == (theirs.block_id, theirs.sequence) == (f"{LINK}:1000", 1000)
    assert digest(mine.material) == digest(theirs.material) and len(mine.material) == 1024
    assert ledger.newest(LINK) == 1000


def test_every_block_has_a_fresh_encapsulation(ends) -> None:
    initiator, responder, ledger = ends
    offers = [make_offer(initiator, sequence) for sequence in (1, 2)]
    assert offers[0].message["encapsulation_key"] != offers[1].message["encapsulation_key"]
    blocks = [answer_offer(responder, ledger, o.message)[1] for o in offers]
    assert digest(blocks[0].material) != digest(blocks[1].material)


def test_messages_carry_no_block_material(ends) -> None:
    initiator, responder, ledger = ends
    pending = make_offer(initiator, 7)
    answer, block = answer_offer(responder, ledger, pending.message)
    text = repr(pending.message) + repr(answer)
    assert block.material.hex() not in text and b64(block.material) not in text


TAMPERED_OFFER_FIELDS = ["exchange_id", "sequence", "encapsulation_key"]


@pytest.mark.parametrize("field", TAMPERED_OFFER_FIELDS)
def test_a_tampered_offer_is_refused_and_burns_no_sequence(ends, field: str) -> None:
    initiator, responder, ledger = ends
    offer = make_offer(initiator, 50).message
    if field == "encapsulation_key":
        raw = bytearray(b64decode(offer[field], field))
        raw[10] ^= 1
        offer[field] = b64(bytes(raw))
    else:
        # Change the last character to another one: replacing it with a fixed one was no
        # change at all when the (random) exchange_id already ended with it, 1 run in 16.
        offer[field] = offer[field] + 1 if isinstance(offer[field], int) else \
            offer[field][:-1] + ("1" if offer[field].endswith("0") else "0")
    with pytest.raises(Conflict, match="signature does not verify"):
        answer_offer(responder, ledger, offer)
    assert ledger.newest(LINK) is None


def test_a_replayed_offer_is_refused(ends) -> None:
    initiator, responder, ledger = ends
    offer = make_offer(initiator, 60).message
    answer_offer(responder, ledger, copy.deepcopy(offer))
    with pytest.raises(Conflict, match="sequence 60 is not above the last one accepted \\(60\\): replayed"):
        answer_offer(responder, ledger, offer)


def test_a_reordered_offer_is_refused(ends) -> None:
    initiator, responder, ledger = ends
    earlier, later = make_offer(initiator, 70), make_offer(initiator, 71)
    answer_offer(responder, ledger, later.message)
    with pytest.raises(Conflict, match="replayed or reordered"):
        answer_offer(responder, ledger, earlier.message)


def test_an_offer_from_an_unpinned_key_is_refused(tmp_path: Path) -> None:
    impostor = make_link(tmp_path, A, B, signer="someone-else")
    responder, ledger = make_link(tmp_path, B, A), open_memory_storage(B).ledger
    with pytest.raises(Unauthorized, match="not pinned for KME-A"):
        answer_offer(responder, ledger, make_offer(impostor, 1).message)
    assert ledger.newest(LINK) is None


def test_an_answer_from_an_unpinned_key_is_refused(tmp_path: Path) -> None:
    initiator = make_link(tmp_path, A, B)
    impostor, ledger = make_link(tmp_path, B, A, signer="someone-else"), open_memory_storage(B).ledger
    pending = make_offer(initiator, 5)
    answer, _ = answer_offer(impostor, ledger, pending.message)
    with pytest.raises(Unauthorized, match="not pinned for KME-B"):
        complete_offer(initiator, pending, answer)


@pytest.mark.parametrize("field, complaint", [("ciphertext", "signature does not verify"),
                                              ("offer_sha256", "do not match the offer"),
                                              ("sequence", "do not match the offer")])
def test_a_tampered_answer_yields_no_block(ends, field: str, complaint: str) -> None:
    initiator, responder, ledger = ends
    pending = make_offer(initiator, 80)
    answer, _ = answer_offer(responder, ledger, pending.message)
    if field == "ciphertext":
        raw = bytearray(b64decode(answer[field], field))
        raw[0] ^= 1
        answer[field] = b64(bytes(raw))
    elif field == "sequence":
        answer[field] += 2
    else:
        answer[field] = "0" * 64
    with pytest.raises(Conflict, match=complaint):
        complete_offer(initiator, pending, answer)


def test_an_answer_to_another_offer_is_refused(ends) -> None:
    initiator, responder, ledger = ends
    first, second = make_offer(initiator, 90), make_offer(initiator, 91)
    answer, _ = answer_offer(responder, ledger, first.message)
    with pytest.raises(Conflict, match="exchange_id, offer_sha256, sequence do not match"):
        complete_offer(initiator, second, answer)


@pytest.mark.parametrize("setting, value", [("kem", "ML-KEM-1024"), ("block_bytes", 2048)])
def test_ends_with_different_settings_refuse_each_other(tmp_path: Path, setting: str, value) -> None:
    initiator = make_link(tmp_path, A, B, **{setting: value})
    responder, ledger = make_link(tmp_path, B, A), open_memory_storage(B).ledger
    with pytest.raises(BadRequest, match=f"{setting} differ from this node's link settings"):
        answer_offer(responder, ledger, make_offer(initiator, 1).message)


def test_only_the_higher_kme_answers(ends) -> None:
    initiator, responder, ledger = ends
    reply, _ = answer_offer(responder, ledger, make_offer(initiator, 3).message)
    assert reply["type"] == "ml-kem-answer"
    with pytest.raises(BadRequest):
        answer_offer(initiator, open_memory_storage(A).ledger, make_offer(responder, 4).message)


@pytest.mark.parametrize("mutate", [lambda m: m.pop("signature"), lambda m: m.update(sequence="1"),
                                    lambda m: m.update(extra=1), lambda m: m.update(signature="@@"),
                                    lambda m: m.update(version=2), lambda m: m.update(sequence=True)],
                         ids=["missing", "mistyped", "extra", "not-base64", "version", "bool"])
def test_malformed_offers_are_bad_requests(ends, mutate) -> None:
    initiator, responder, ledger = ends
    offer = make_offer(initiator, 1).message
    mutate(offer)
    with pytest.raises(BadRequest):
        answer_offer(responder, ledger, offer)
    with pytest.raises(BadRequest):
        answer_offer(responder, ledger, [offer])


def test_ml_kem_1024_and_mixed_backends_agree(tmp_path: Path) -> None:
    initiator = make_link(tmp_path, A, B, kem="ML-KEM-1024", backend="pqcrypto")
    responder = make_link(tmp_path, B, A, kem="ML-KEM-1024", backend="cryptography")
    pending = make_offer(initiator, 11)
    answer, theirs = answer_offer(responder, open_memory_storage(B).ledger, pending.message)
    assert digest(complete_offer(initiator, pending, answer).material) == digest(theirs.material)


def test_sequences_increase_and_alternate_in_parity() -> None:
    times = iter([5_000_000, 5_000_000, 4_000_000, 9_000_000, 9_001_000, 9_001_000])
    clock = SequenceClock(lambda: next(times))
    sequences = [clock.next() for _ in range(6)]
    assert sequences == sorted(set(sequences))
    assert [s % 2 for s in sequences] in ([0, 1, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0])


@pytest.mark.parametrize("settings, complaint", [
    ({"kem": "ML-KEM-512"}, "kem: ML-KEM-512 is not offered by the cryptography backend"),
    ({"backend": "liboqs"}, "backend: liboqs is unavailable"),
    ({"backend": "nope"}, "backend: unknown KEM backend"),
    ({"signature": "ML-DSA-87"}, "signing_key: .* is not an ML-DSA-87 key"),
    ({"block_bytes": 16321}, "block_bytes: Input should be less than or equal to 16320"),
    ({"blocks_per_s": 0}, "blocks_per_s: Input should be greater than 0"),
    ({"peer_public_key": "pqc/missing.pub"}, "peer_public_key: cannot read"),
])
def test_bad_settings_name_the_setting(tmp_path: Path, settings: dict, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        make_link(tmp_path, A, B, **settings)


def test_a_signing_key_others_can_read_is_refused(tmp_path: Path) -> None:
    make_link(tmp_path, A, B)
    (tmp_path / A / "pqc" / "self.key").chmod(0o644)
    section = {k: v for k, v in PQC_SECTION.items() if k != "kind"}
    with pytest.raises(ConfigError, match="signing_key: .* must be readable by its owner only"):
        parse_link(section, SourceContext(A, B, LINK, str(tmp_path / A)))
