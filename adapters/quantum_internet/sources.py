"""The ``entangled``, ``repeater-chain`` and ``satellite`` key sources.

Each runs frames on wall-clock slots of ``frame_interval_s``: frame k is the same
computation at both ends of the link, seeded with HMAC-SHA256(shared secret, link_id | k)
(:func:`adapters.qkd_sim.source_config.frame_seed`), so both ends hold block
``f"{link_id}:{k}"`` with sequence k, or neither does.

* ``entangled``: a BBM92 run (:func:`adapters.quantum_internet.bbm92.run_bbm92`) of
  one frame's pump pulses; the end whose KME_ID sorts first keeps Alice's key, the other
  Bob's, each made by its own side of the post-processing.  An eavesdropper
  (``eve_fraction``) shows as the Bell value falling to 2 and the frames abort.
* ``repeater-chain`` and ``satellite``: rate models.  The frame's key length is drawn
  (Poisson) around the modelled secret rate times the frame length: the chain's Monte
  Carlo rate, or the downlink's rate at that moment of the pass (none between passes);
  its bits are SHAKE-256 of the frame's seed.  Their key bits are simulated as the
  protocol's output, not by simulating the protocol.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.qkd_sim.source import take_whole_blocks
from adapters.qkd_sim.source_config import frame_seed, link_identity, shared_secret
from adapters.quantum_internet import satellite
from adapters.quantum_internet.bbm92 import run_bbm92
from adapters.quantum_internet.pass_schedule import first_conflict
from adapters.quantum_internet.repeater import ChainResult, simulate_chain
from adapters.quantum_internet.source_config import (EntangledSettings, RepeaterChainSettings, SatelliteSettings,
                                                     parse)
from kms.keys import KeyBlock, Provenance
from kms.sources import KeySource, SourceContext, SourceHealth

log = logging.getLogger("qkms.sources.quantum_internet")

DOWN_AFTER_ABORTS = 3
MAX_LAG_FRAMES = 3
STOP_JOIN_S = 5.0


@dataclass(frozen=True)
class Frame:
    """One frame's outcome at this end: its key (None if none) and figures, never material."""

    index: int
    key: bytes | None = field(default=None, repr=False)
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    aborted: bool = False


class FrameSource(KeySource):
    """Frames on wall-clock slots, a queue of blocks, health from the last frames."""

    on_demand = False
    settings_class: type = EntangledSettings

    def __init__(self, settings, model, context: SourceContext, secret: bytes):
        self._settings, self._model = settings, model
        self._link_id, self._peer = link_identity(context)
        self._kme_id = context.kme_id
        self._is_alice = context.kme_id < self._peer
        self._secret = secret
        self._lock = threading.Lock()
        self._queue: deque[KeyBlock] = deque()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._last: Frame | None = None
        self._consecutive_aborts = 0

    @classmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "FrameSource":
        settings, model = parse(cls.settings_class, section, cls.kind)
        link_id, _ = link_identity(context)
        return cls(settings, model, context, shared_secret(settings, context, link_id))

    @abstractmethod
    def make_frame(self, index: int, seed: int) -> Frame:
        """This end's outcome of frame ``index`` (the same computation at both ends)."""

    def run_frame(self, index: int) -> KeyBlock | None:
        """Compute frame ``index``, queue and return its block (None if it made no key)."""
        frame = self.make_frame(index, frame_seed(self._secret, self._link_id, index))
        block = KeyBlock(f"{self._link_id}:{index}", frame.key, index) if frame.key else None
        with self._lock:
            self._last = frame
            self._consecutive_aborts = self._consecutive_aborts + 1 if frame.aborted else 0
            if block is not None:
                self._queue.append(block)
                while len(self._queue) > self._settings.max_queued_blocks:
                    log.warning("link %s: key queue full, dropped block %s", self._link_id, self._queue.popleft().block_id)
        if frame.aborted:
            log.warning("link %s: frame %d yielded no key: %s", self._link_id, index, frame.reason)
        return block

    def current_slot(self) -> int:
        return int(time.time() // self._settings.frame_interval_s)

    def start(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        self._stopping.clear()
        self._worker = threading.Thread(target=self._work, name=f"{self.kind} {self._link_id}", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stopping.set()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(STOP_JOIN_S)

    def _work(self) -> None:
        interval, index = self._settings.frame_interval_s, self.current_slot() + 1
        while not self._stopping.wait(max(0.0, index * interval - time.time())):
            if self.current_slot() - index > MAX_LAG_FRAMES:
                index = self.current_slot()
                continue
            try:
                self.run_frame(index)
            except Exception:  # a failing frame must not end the link
                log.exception("link %s: frame %d failed", self._link_id, index)
            index += 1

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        """Queued blocks in order, whole blocks only, totalling at most ``max_bits``."""
        with self._lock:
            return take_whole_blocks(self._queue, max_bits)

    def health(self) -> SourceHealth:
        with self._lock:
            last, aborts, queued = self._last, self._consecutive_aborts, len(self._queue)
        if last is None:
            return SourceHealth("down", "no frame completed yet", {"queued_blocks": queued})
        metrics = {**last.metrics, "frame": last.index, "queued_blocks": queued, "consecutive_aborts": aborts}
        if aborts >= DOWN_AFTER_ABORTS:
            return SourceHealth("down", f"{aborts} consecutive frames yielded no key; last: {last.reason}", metrics)
        return SourceHealth("degraded" if last.aborted else "up", f"frame {last.index}: {last.reason}", metrics)

    def _provenance(self, source: str, *algorithms: str) -> Provenance:
        return Provenance((source,), algorithms, (self._kme_id, self._peer))


class EntangledSource(FrameSource):
    """BBM92 over fibre, source in the middle or at one end, with a CHSH test subset."""

    kind = "entangled"
    settings_class = EntangledSettings

    def make_frame(self, index: int, seed: int) -> Frame:
        pulses = max(1, round(self._model.pulse_rate_hz * self._settings.frame_interval_s))
        run = run_bbm92(self._model, pulses, seed, self._settings.eve_fraction)
        s = run.stats
        metrics = {"qber": s.qber, "chsh_s": s.chsh_s, "secret_bits": s.secret_bits,
                   "secret_rate_bps": s.secret_bits / self._settings.frame_interval_s}
        if s.aborted or not run.keys_match:
            return Frame(index, None, metrics, s.abort_reason or "final keys differ after verification", True)
        key = run.alice_key if self._is_alice else run.bob_key
        return Frame(index, key, metrics, f"S = {s.chsh_s:.2f}, QBER {s.qber:.1%}, {s.secret_bits} secret bits")

    @property
    def provenance(self) -> Provenance:
        return self._provenance("entangled", "bbm92", "chsh-test", "cascade", "toeplitz-pa",
                                "finite-key-tomamichel2012")


def modelled_key(seed: int, bits: int) -> bytes:
    """``bits`` (whole bytes) of key for a rate-model frame, from the frame's secret seed."""
    return hashlib.shake_256(seed.to_bytes(32, "big")).digest(bits // 8)


def _poisson_bits(seed: int, mean_bits: float) -> int:
    return int(np.random.default_rng(seed).poisson(max(mean_bits, 0.0))) // 8 * 8


class RepeaterChainSource(FrameSource):
    """A chain of quantum repeaters between the two nodes (no trusted node in between)."""

    kind = "repeater-chain"
    settings_class = RepeaterChainSettings
    _chain: ChainResult | None = None

    def _result(self) -> ChainResult:
        if self._chain is None:  # the same seed at both ends: the same modelled rate
            seed = frame_seed(self._secret, self._link_id, -1)
            self._chain = simulate_chain(self._model, self._settings.rounds, seed)
        return self._chain

    def make_frame(self, index: int, seed: int) -> Frame:
        chain = self._result()
        bits = _poisson_bits(seed, chain.secret_bits_per_s * self._settings.frame_interval_s)
        metrics = {"fidelity": chain.fidelity, "qber": chain.qber, "pairs_per_s": chain.pairs_per_s,
                   "secret_rate_bps": chain.secret_bits_per_s, "plob_bits_per_s": chain.plob_bits_per_s}
        if bits == 0:
            return Frame(index, None, metrics, f"no secret key (fidelity {chain.fidelity:.3f})", True)
        return Frame(index, modelled_key(seed, bits), metrics,
                     f"F = {chain.fidelity:.3f}, QBER {chain.qber:.1%}, {bits} secret bits")

    @property
    def provenance(self) -> Provenance:
        return self._provenance("repeater-chain", "entanglement-swapping", "bb84-on-pairs", "rate-model")


class SatelliteSource(FrameSource):
    """Decoy-state BB84 downlinks from a trusted satellite, key only during passes."""

    kind = "satellite"
    settings_class = SatelliteSettings

    @classmethod
    def conflict_at_node(cls, sections) -> tuple[int, str] | None:
        """A node has one optical terminal: its downlinks share the orbit's period and
        their passes never overlap (the satellite relays between stations it sees in turn)."""
        return first_conflict([parse(SatelliteSettings, section, cls.kind)[1].schedule for section in sections])

    def make_frame(self, index: int, seed: int) -> Frame:
        interval = self._settings.frame_interval_s
        when = index * interval
        fraction = self._model.schedule.fraction_at(when)
        if fraction is None:
            wait = self._model.schedule.seconds_to_next(when)
            return Frame(index, None, {"in_pass": 0.0, "secret_rate_bps": 0.0},
                         f"between passes, next pass in {wait:.0f} s")
        link = satellite.link_at(self._model, fraction)
        bits = _poisson_bits(seed, link["secret_rate_bps"] * interval)
        metrics = {"in_pass": 1.0, **link}
        reason = f"in pass: elevation {link['elevation_deg']:.0f} deg, loss {link['loss_db']:.1f} dB, {bits} bits"
        return Frame(index, modelled_key(seed, bits) if bits else None, metrics, reason)

    @property
    def provenance(self) -> Provenance:
        return self._provenance("satellite", "decoy-bb84-downlink", "trusted-satellite-relay", "rate-model")
