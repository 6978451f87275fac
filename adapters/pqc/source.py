"""The ``ml-kem`` key source: post-quantum link key material from ML-KEM exchanges
between the two ends of a link, authenticated with ML-DSA (docs/pqc.md).

The end with the lower KME_ID initiates: its link manager's instance runs a worker
that sends one signed offer per block, at ``blocks_per_s``, through ``context.channel``
(the KM channel to the peer's web worker), checks the signed answer and derives the
block. The other end answers in a web worker (:meth:`respond`, on a never-started
instance), leaving each block in the node's block inbox, from where its link manager's
instance hands it out. Both ends hold the same block under the same id and sequence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from adapters.pqc.exchange import SequenceClock, answer_offer, complete_offer, make_offer
from adapters.pqc.settings import MlKemLink, parse_link
from adapters.pqc.transcript import BLOCK_KDF
from kms.errors import BadRequest
from kms.keys import KeyBlock, Provenance
from kms.source_worker import SourceWorker
from kms.sources import KeySource, SourceContext, SourceHealth

log = logging.getLogger("qkms.sources.ml-kem")

DOWN_AFTER_FAILURES = 3
MAX_BACKOFF_S = 5.0
#: The answering end calls the link down when no block came for this long (or this
#: many intervals, if longer).
RESPONDER_SILENCE_S = 10.0
STOP_JOIN_S = 5.0
INBOX_TAKE = 256


class MlKemSource(KeySource):
    """One end of a PQC link. Settings: ``kem`` (ML-KEM-768), ``backend`` (cryptography),
    ``signature`` (ML-DSA-65), ``signing_key``, ``peer_public_key``, ``block_bytes``
    (4096), ``blocks_per_s`` (2), ``max_queued_blocks`` (256)."""

    kind = "ml-kem"
    on_demand = False

    def __init__(self, link: MlKemLink, context: SourceContext):
        self._link = link
        self._context = context
        self._lock = threading.Lock()
        self._queue: deque[KeyBlock] = deque()
        self._sequences = SequenceClock()
        self._worker = SourceWorker(f"ml-kem {link.link_id}", STOP_JOIN_S)
        self._stopping = self._worker.stopping
        self._counts = {"exchanges_ok": 0, "exchanges_failed": 0, "consecutive_failures": 0, "blocks_dropped": 0}
        self._last_failure = ""
        self._last_block_at: float | None = None
        self._started_at = time.monotonic()

    @classmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "MlKemSource":
        return cls(parse_link(section, context), context)

    # --- the initiating end -----------------------------------------------------------------------

    def exchange_once(self) -> KeyBlock:
        """One exchange with the peer: offer, answer, block (queued and returned)."""
        pending = make_offer(self._link, self._sequences.next())
        block = complete_offer(self._link, pending, self._context.channel.exchange(pending.message))
        self._enqueue([block])
        return block

    def start(self) -> None:
        """Start the worker at the initiating end (the answering end needs none)."""
        if not self._link.is_initiator or self._context.channel is None:
            return
        self._worker.start(self._work)

    def stop(self) -> None:
        self._worker.stop()

    def _work(self) -> None:
        interval = 1.0 / self._link.settings.blocks_per_s
        due = time.monotonic()
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            try:
                self.exchange_once()
            except Exception as exc:  # any failure: no block, count it, back off, go on
                delay = self._record_failure(exc)
                due = time.monotonic() + max(interval, delay)
                continue
            self._record_success()
            # Paced, never bursting to catch up more than a second.
            due = max(due + interval, time.monotonic() - 1.0)

    def _record_success(self) -> None:
        with self._lock:
            self._counts["exchanges_ok"] += 1
            self._counts["consecutive_failures"] = 0

    def _record_failure(self, exc: Exception) -> float:
        reason = getattr(exc, "message", None) or type(exc).__name__
        with self._lock:
            self._counts["exchanges_failed"] += 1
            self._counts["consecutive_failures"] += 1
            failures = self._counts["consecutive_failures"]
            changed, self._last_failure = reason != self._last_failure, reason
        if changed:
            log.warning("link %s: ML-KEM exchange with %s failed: %s", self._link.link_id, self._link.peer, reason)
        return min(MAX_BACKOFF_S, 0.1 * 2 ** failures)

    # --- the answering end ------------------------------------------------------------------------

    def respond(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer the initiator's offer (in a web worker): checked, once, then the block
        goes to this node's inbox."""
        if self._context.ledger is None or self._context.inbox is None:
            raise BadRequest("this node cannot answer ML-KEM offers here (no sequence ledger or inbox)")
        answer, block = answer_offer(self._link, self._context.ledger, message)
        self._context.inbox.put(self._link.link_id, [block])
        return answer

    # --- both ends --------------------------------------------------------------------------------

    def _enqueue(self, blocks: list[KeyBlock]) -> None:
        if not blocks:
            return
        with self._lock:
            self._queue.extend(blocks)
            self._queue = deque(sorted(self._queue, key=lambda b: b.sequence))
            self._last_block_at = time.monotonic()
            while len(self._queue) > self._link.settings.max_queued_blocks:
                self._queue.popleft()
                self._counts["blocks_dropped"] += 1

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        """Blocks ready now (the answering end's come from the inbox), whole, in sequence,
        totalling at most ``max_bits``."""
        if self._context.inbox is not None and not self._link.is_initiator:
            self._enqueue(self._context.inbox.take(self._link.link_id, INBOX_TAKE))
        out, budget = [], max_bits
        with self._lock:
            while self._queue and self._queue[0].size_bits <= budget:
                block = self._queue.popleft()
                budget -= block.size_bits
                out.append(block)
        return out

    def health(self) -> SourceHealth:
        settings = self._link.settings
        with self._lock:
            counts, failure, last_block = dict(self._counts), self._last_failure, self._last_block_at
            queued = len(self._queue)
        metrics = {**counts, "queued_blocks": queued, "block_bits": settings.block_bytes * 8,
                   "target_rate_bps": settings.block_bytes * 8 * settings.blocks_per_s}
        label = f"{settings.kem} with {settings.signature} ({self._link.backend.name})"
        if self._link.is_initiator:
            return self._initiator_health(counts, failure, label, metrics)
        silence = max(RESPONDER_SILENCE_S, 5.0 / settings.blocks_per_s)
        since = time.monotonic() - (last_block if last_block is not None else self._started_at)
        if since > silence or last_block is None:
            what = "no block" if last_block is not None else "waiting for the first offer"
            return SourceHealth("down", f"{label}: {what} from {self._link.peer} for {since:.0f} s", metrics)
        return SourceHealth("up", f"{label}: answering {self._link.peer}", metrics)

    def _initiator_health(self, counts: dict, failure: str, label: str, metrics: dict) -> SourceHealth:
        if counts["consecutive_failures"] >= DOWN_AFTER_FAILURES or (failure and not counts["exchanges_ok"]):
            return SourceHealth("down", f"{label}: {counts['consecutive_failures']} exchanges failed; "
                                        f"last: {failure}", metrics)
        if counts["consecutive_failures"]:
            return SourceHealth("degraded", f"{label}: last exchange failed: {failure}", metrics)
        if not counts["exchanges_ok"]:
            return SourceHealth("down", f"{label}: no exchange completed yet", metrics)
        return SourceHealth("up", f"{label}: {counts['exchanges_ok']} exchanges with {self._link.peer}", metrics)

    @property
    def provenance(self) -> Provenance:
        settings = self._link.settings
        return Provenance(("ml-kem",), (settings.kem.lower(), settings.signature.lower(), BLOCK_KDF),
                          (self._link.kme_id, self._link.peer))
