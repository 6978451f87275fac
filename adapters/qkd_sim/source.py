"""The ``simulated`` key source: a decoy-state BB84 link run by both of its ends.

Both ends of a link run the same deterministic simulation (:func:`run_link`): frame
``k`` is the wall-clock slot ``floor(time.time() / interval)`` and its seed is
HMAC-SHA256(shared secret, link_id | k).  The end whose KME_ID sorts first keeps
Alice's final key, the other Bob's; each is produced by its own side of the protocol
inside the engine, which compares them by hash.  A frame that aborts, or whose keys
differ, yields no block at either end.  Blocks are ``KeyBlock(f"{link_id}:{k}", key, k)``.

Real time: by default a frame of ``pulses_per_frame`` pulses is simulated every
``pulses_per_frame / pulse_rate_hz`` seconds, so the pool fills at the modelled device's
physical secret-key rate when the CPU keeps up.  The ``speedup`` metric is measured, not
configured: simulated device seconds per wall-clock second over the recent frames
(frames skipped because the worker fell behind count as lost time); ``cpu_speedup`` is
what the CPU achieves on a frame (device seconds per second of computing it).  When the
link cannot keep up, its health says so ("CPU-bound: 0.4x real time"), and its worker runs
only every 2^j-th pair of slots (2^j >= the slowdown), so that both ends of a CPU-bound
link still simulate the same frames, half with even and half with odd sequence numbers.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.qkd_sim.channel import EveSpec
from adapters.qkd_sim.engine import LinkStats, run_link
from adapters.qkd_sim.errors import QkdSimError
from adapters.qkd_sim.source_config import (SimulatedSourceSettings, frame_seed, link_identity,
                                            parse_settings, read_eve_file, shared_secret)
from kms.keys import KeyBlock, Provenance
from kms.source_worker import SourceWorker
from kms.sources import KeySource, SourceContext, SourceHealth

log = logging.getLogger("qkms.sources.simulated")

DOWN_AFTER_ABORTS = 3  # consecutive aborted frames after which the link is "down"
BASELINE_WEIGHT = 0.2  # weight of a new frame in the running QBER baseline
MAX_LAG_FRAMES = 3  # a worker further behind than this skips to the current slot
STOP_JOIN_S = 5.0


class _FrameCancelled(QkdSimError):
    """Raised from the engine's progress callback when the worker is stopping."""


@dataclass(frozen=True)
class FrameOutcome:
    """What one frame left behind for health(): statistics and alarms, no key material."""

    index: int
    stats: LinkStats
    delivered: bool
    qber_alarm: str | None


def take_whole_blocks(queue: deque[KeyBlock], max_bits: int) -> list[KeyBlock]:
    """Pop blocks from the front of ``queue`` while the next fits in what is left of
    ``max_bits``; a block that does not fit stays, whole, for a later fetch."""
    out, budget = [], max_bits
    while queue and queue[0].size_bits <= budget:
        block = queue.popleft()
        budget -= block.size_bits
        out.append(block)
    return out


def _next_slot(slot: int, stride: int) -> int:
    """The first slot at or after ``slot`` in a pair of slots (2i, 2i + 1) with i a
    multiple of ``stride``.  Pairs, because the link manager gives a block to one end's
    half of the pool or the other's by the parity of its sequence number."""
    pair = slot >> 1
    return slot if pair % stride == 0 else -(-pair // stride) * stride * 2


def _lower_thread_priority(nice: int) -> None:
    """Let the node's own work (key delivery, relaying) go first: on Linux a thread has
    its own nice value, so a CPU-bound simulation yields the cores instead of starving
    the requests it exists to serve (its speedup then shows what is left for it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted
        log.info("simulation worker keeps its priority: %s", exc)


class _Pace:
    """How fast frames complete: wall-clock time per frame and CPU time per frame.

    Exponentially weighted over recent frames.  Between two completed frames the wall
    clock counts ``(index - previous index) * interval`` when the worker keeps to its
    slots, or more when computing a frame took longer; slots skipped to catch up count
    as time in which nothing was simulated.
    """

    WEIGHT = 0.3

    def __init__(self):
        self.wall_per_frame_s: float | None = None
        self.cpu_per_frame_s: float | None = None
        self.previous: tuple[int, float] | None = None

    def frame_done(self, index: int, compute_s: float, interval_s: float) -> None:
        """Record a completed frame (its slot index and the seconds it took to compute)."""
        now = time.monotonic()
        wall = max(compute_s, interval_s)
        if self.previous is not None and index > self.previous[0]:
            wall = max(now - self.previous[1], (index - self.previous[0]) * interval_s)
        self.previous = (index, now)
        self.wall_per_frame_s = self._mix(self.wall_per_frame_s, wall)
        self.cpu_per_frame_s = self._mix(self.cpu_per_frame_s, compute_s)

    def _mix(self, old: float | None, new: float) -> float:
        return new if old is None else (1.0 - self.WEIGHT) * old + self.WEIGHT * new

    def speedup(self, simulated_s: float) -> float:
        """Simulated device seconds per wall-clock second (0 before the first frame)."""
        return simulated_s / self.wall_per_frame_s if self.wall_per_frame_s else 0.0

    def cpu_speedup(self, simulated_s: float) -> float:
        """Simulated device seconds per second of computing (0 before the first frame)."""
        return simulated_s / self.cpu_per_frame_s if self.cpu_per_frame_s else 0.0


class SimulatedQkdSource(KeySource):
    """Decoy-state BB84 over a simulated fibre; keys appear frame by frame.

    Without ``seed_file`` the frame seeds derive from the link id alone, so anyone
    holding the configuration can reproduce every key: for tests and demos only.
    Settings (all optional): ``preset`` ("gys"), ``length_km`` (10), ``optimize`` (true:
    intensities, their probabilities and p_z chosen per length and frame size, Lim et al.
    2014), ``mu``, ``nu``, ``p_mu``, ``p_nu``, ``p_z`` (each, when set, held fixed),
    ``deviation_bound`` ("chernoff" | "hoeffding"),
    ``pulses_per_frame`` (1e9), ``frame_interval_s`` (default: real time for the device),
    ``seed_file``, ``eve``
    ({kind: intercept-resend|pns, fraction}), ``qber_alarm_margin`` (0.02),
    ``max_queued_blocks`` (64), ``eve_file`` (an eavesdropper while that file exists),
    ``worker_nice`` (10: the simulation thread's nice value, so that a CPU-bound link
    leaves the cores to key delivery first).
    """

    kind = "simulated"
    on_demand = False

    def __init__(self, settings: SimulatedSourceSettings, context: SourceContext, secret: bytes):
        self._settings = settings
        self._params = settings.engine_params()
        self._interval_s = settings.interval_s(self._params)
        self._simulated_s = settings.pulses_per_frame / self._params.pulse_rate_hz
        self._pace = _Pace()
        self._link_id, self._peer = link_identity(context)
        self._kme_id = context.kme_id
        self._data_dir = context.data_dir
        self._is_alice = context.kme_id < self._peer
        self._secret = secret
        self._eve = settings.eve.spec() if settings.eve else None
        self._lock = threading.Lock()
        self._queue: deque[KeyBlock] = deque()
        self._worker = SourceWorker(f"qkd-sim {self._link_id}", STOP_JOIN_S)
        self._stopping = self._worker.stopping
        self._last: FrameOutcome | None = None
        self._baseline_qber: float | None = None
        self._counts = {"frames_ok": 0, "frames_aborted": 0, "consecutive_aborts": 0, "blocks_dropped": 0}
        self._last_abort_reason = ""

    @classmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "SimulatedQkdSource":
        settings = parse_settings(section)
        link_id, _ = link_identity(context)
        return cls(settings, context, shared_secret(settings, context, link_id))

    @classmethod
    def validate_config(cls, section: dict[str, Any], context: SourceContext) -> None:
        """The section, the link's identity and its seed file, checked as :meth:`from_config`
        checks them, without optimising the parameters (seconds of CPU at every node start)."""
        settings = parse_settings(section)
        link_id, _ = link_identity(context)
        shared_secret(settings, context, link_id)

    # --- producing -----------------------------------------------------------------------

    def set_eve(self, spec: EveSpec | None) -> None:
        """Switch an eavesdropper on (or off, with None) from the next frame on."""
        with self._lock:
            self._eve = spec
        log.warning("link %s: eavesdropper set to %s", self._link_id, spec)

    def _eve_now(self) -> EveSpec | None:
        """The eavesdropper of the next frame: the eve file's while it exists, else the set one."""
        with self._lock:
            eve = self._eve
        path = self._settings.eve_file
        if path is None:
            return eve
        try:
            return read_eve_file(path if path.is_absolute() or not self._data_dir else Path(self._data_dir) / path) \
                or eve
        except (OSError, ValueError) as exc:
            log.warning("link %s: eve_file %s ignored: %s", self._link_id, path, exc)
            return eve

    def run_frame(self, index: int) -> KeyBlock | None:
        """Simulate frame ``index``, queue and return its block (None if it aborted)."""
        return self._run_frame(index, cancel=None)

    def _run_frame(self, index: int, cancel: threading.Event | None) -> KeyBlock | None:
        eve = self._eve_now()

        def progress(stage: str, done: int, total: int) -> None:
            if cancel is not None and cancel.is_set():
                raise _FrameCancelled

        started = time.perf_counter()
        run = run_link(self._params, self._settings.pulses_per_frame,
                       frame_seed(self._secret, self._link_id, index), eve, progress)
        delivered = not run.stats.aborted and run.keys_match
        block = None
        if delivered:
            key = run.alice_key if self._is_alice else run.bob_key
            block = KeyBlock(f"{self._link_id}:{index}", key, index)
        with self._lock:
            self._pace.frame_done(index, time.perf_counter() - started, self._interval_s)
        self._record(index, run.stats, block)
        return block

    def _record(self, index: int, stats: LinkStats, block: KeyBlock | None) -> None:
        with self._lock:
            alarm = self._qber_alarm(stats)
            self._last = FrameOutcome(index, stats, block is not None, alarm)
            if block is None:
                self._counts["frames_aborted"] += 1
                self._counts["consecutive_aborts"] += 1
                self._last_abort_reason = stats.abort_reason or "final keys differ after verification"
                log.warning("link %s: frame %d yielded no key: %s", self._link_id, index,
                            self._last_abort_reason)
                return
            self._counts["frames_ok"] += 1
            self._counts["consecutive_aborts"] = 0
            self._enqueue(block)

    def _qber_alarm(self, stats: LinkStats) -> str | None:
        """Compare the frame's QBER with the running baseline; update the baseline if calm."""
        if stats.sifted_bits == 0:
            return None
        qber, baseline = stats.qber, self._baseline_qber
        if baseline is not None and qber > baseline + self._settings.qber_alarm_margin:
            return f"QBER rose from {baseline:.1%} to {qber:.1%}: possible eavesdropper"
        if qber <= self._params.qber_abort_threshold:
            self._baseline_qber = qber if baseline is None else (
                (1.0 - BASELINE_WEIGHT) * baseline + BASELINE_WEIGHT * qber)
        return None

    def _enqueue(self, block: KeyBlock) -> None:
        self._queue.append(block)
        while len(self._queue) > self._settings.max_queued_blocks:
            dropped = self._queue.popleft()
            self._counts["blocks_dropped"] += 1
            log.warning("link %s: key queue full (%d blocks), dropped oldest block %s (%d bits)",
                        self._link_id, self._settings.max_queued_blocks, dropped.block_id, dropped.size_bits)

    # --- the worker ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker; it runs frames from the next wall-clock slot on (no backfill)."""
        self._worker.start(self._work)

    def stop(self) -> None:
        """Stop the worker, cancelling a frame in progress; idempotent."""
        self._worker.stop()

    def current_slot(self) -> int:
        """The wall-clock slot (frame index) now."""
        return int(time.time() // self._interval_s)

    def _work(self) -> None:
        _lower_thread_priority(self._settings.worker_nice)
        interval = self._interval_s
        index = self.current_slot() + 1
        while not self._stopping.wait(max(0.0, index * interval - time.time())):
            now_slot = self.current_slot()
            if now_slot - index > MAX_LAG_FRAMES:
                caught_up = _next_slot(now_slot, self._stride())
                log.warning("link %s: simulation %d frames behind, skipping frames %d..%d",
                            self._link_id, now_slot - index, index, caught_up - 1)
                index = caught_up
                continue
            try:
                self._run_frame(index, self._stopping)
            except _FrameCancelled:
                return
            except Exception:  # a failing frame must not end the link: count it and go on
                log.exception("link %s: frame %d failed", self._link_id, index)
                self._record_failure(index)
            index = _next_slot(index + 1, self._stride())

    def _stride(self) -> int:
        """Frames a CPU-bound worker runs: every stride-th pair of slots, stride the power of
        two at or above the slowdown (seconds of computing a frame per slot interval; for a
        real-time link, the inverse of its ``cpu_speedup``).  Both ends of a link choose
        powers of two on the same slot grid, so the slower end's frames are a subset of the
        faster end's and every frame it runs yields a block both ends hold."""
        with self._lock:
            slots_per_cpu_frame = self._pace.cpu_speedup(self._interval_s)
        if slots_per_cpu_frame <= 0.0 or slots_per_cpu_frame >= 1.0:
            return 1
        return 1 << math.ceil(math.log2(1.0 / slots_per_cpu_frame))

    def _record_failure(self, index: int) -> None:
        with self._lock:
            self._counts["frames_aborted"] += 1
            self._counts["consecutive_aborts"] += 1
            self._last_abort_reason = f"frame {index}: simulation error (see log)"

    # --- the KeySource contract ----------------------------------------------------------

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        """Queued blocks in order, whole blocks only, totalling at most ``max_bits``."""
        with self._lock:
            return take_whole_blocks(self._queue, max_bits)

    def health(self) -> SourceHealth:
        with self._lock:
            last, counts, abort_reason = self._last, dict(self._counts), self._last_abort_reason
            metrics = self._metrics(last, counts)
        if counts["consecutive_aborts"] >= DOWN_AFTER_ABORTS:
            return SourceHealth("down", f"{counts['consecutive_aborts']} consecutive frames yielded no key; "
                                        f"last: {abort_reason}", metrics)
        if last is None:
            return SourceHealth("down", "no frame completed yet", metrics)
        problems = [p for p in (last.qber_alarm, None if last.delivered else abort_reason) if p]
        if problems:
            return SourceHealth("degraded", f"frame {last.index}: " + "; ".join(problems), metrics)
        pace = "" if metrics["cpu_speedup"] >= 1.0 else \
            f"; CPU-bound: {metrics['cpu_speedup']:.2g}x real time for this device"
        return SourceHealth("up", f"frame {last.index}: QBER {last.stats.qber:.1%}, "
                                  f"{last.stats.secret_bits} secret bits{pace}", metrics)

    def _metrics(self, last: FrameOutcome | None, counts: dict[str, int]) -> dict[str, float]:
        metrics: dict[str, float] = {**counts, "queued_blocks": len(self._queue),
                                     "speedup": self._pace.speedup(self._simulated_s),
                                     "cpu_speedup": self._pace.cpu_speedup(self._simulated_s)}
        if self._baseline_qber is not None:
            metrics["qber_baseline"] = self._baseline_qber
        if last is not None:
            s = last.stats
            device_rate = s.secret_bits / self._simulated_s
            metrics |= {"frame": last.index, "qber": s.qber, "sifted_bits": s.sifted_bits,
                        "y1_lower": s.y1_lower, "e1_upper": s.e1_upper, "secret_bits": s.secret_bits,
                        "secret_bits_per_pulse": s.secret_bits_per_pulse,
                        "device_secret_rate_bps": device_rate,
                        "secret_rate_bps": device_rate * metrics["speedup"],
                        "click_rate_hz": s.click_rate_hz, "max_click_rate_hz": s.max_click_rate_hz}
        return metrics

    @property
    def last_abort_reason(self) -> str:
        """Why the most recent frame without a key yielded none ("" if none failed yet)."""
        with self._lock:
            return self._last_abort_reason

    @property
    def provenance(self) -> Provenance:
        return Provenance(("qkd-sim",),
                          ("decoy-bb84", "cascade", "toeplitz-verification", "toeplitz-pa",
                           "finite-key-lim2014"),
                          (self._kme_id, self._peer))
