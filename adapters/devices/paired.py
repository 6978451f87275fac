"""What both device sources share: one end drives, the other answers, both get the
same blocks.

The **master** end's source (in its node's link manager) gathers a block's worth of
key material from its device (ETSI 014: enc_keys; ETSI 004: chunks the device pushed)
and offers it to the **slave** end over the link's KM channel: the block id, a
sequence, where the slave's copy is (``locator``: the device key_IDs, or the key
stream and indexes) and the equality check's seed and tag (``adapters.devices.check``),
never key material. The slave end's source answers in its node's web worker: it
takes its copy from its own device (dec_keys, or its pushed chunks), checks it and,
if the tags agree, leaves the block in its node's inbox, answering ``ok``; the master
queues its copy only on ``ok``. The slave end's link-manager instance hands inbox
blocks out from ``fetch``. Both build ``KeyBlock(block_id, block minus the check's
pad, sequence)``.

Sequences come from the master: a millisecond clock, strictly increasing, so they keep
increasing across restarts (about 1.8e12: exact in Redis and in its Lua scripts, which
write numbers with 14 significant digits). A sequence's parity says which end's pool
half the block joins (``kms.pools.owner_of``): the master gives each block to the half
furthest below ``target_pool_bits / 2``, so the end that sends keys gets the blocks it
needs and an idle half does not grow. If an offer's answer is lost
the master drops its copy; a copy the slave kept is then held by one end only, which
the link manager resolves (an owner's block is used only once its peer holds it; pool
sync drops the rest).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from adapters.devices import check
from adapters.devices.errors import DeviceFault
from adapters.devices.health import BreakerPolicy, DeviceHealth
from adapters.devices.profiles import Protocol
from adapters.devices.settings import DeviceSettings, Role, check_files, parse_settings, resolve_role
from kms.errors import BadRequest, QkmsError
from kms.keys import KeyBlock, Provenance
from kms.source_worker import SourceWorker
from kms.sources import KeySource, SourceContext, SourceHealth

log = logging.getLogger("qkms.sources.devices")

STOP_JOIN_S = 10.0
RATE_WINDOW_S = 60.0
#: Largest sequence the master hands out: Redis stores sequences as doubles.
MAX_SEQUENCE = 2**53 - 1


class SequenceClock:
    """Strictly increasing sequences from a millisecond clock, of the parity asked for
    (alternating when none is)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._last: int | None = None
        self._lock = threading.Lock()

    def next(self, parity: int | None = None) -> int:
        with self._lock:
            candidate = int(self._clock() * 1000)
            if self._last is not None:
                candidate = max(candidate, self._last + 1)
                if parity is None and candidate % 2 == self._last % 2:
                    candidate += 1
            if parity is not None and candidate % 2 != parity:
                candidate += 1
            self._last = candidate
            return candidate


class BlockQueue:
    """Blocks waiting for the link manager, handed out whole, in order, within a budget."""

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._blocks: deque[KeyBlock] = deque()
        self._lock = threading.Lock()

    def put(self, block: KeyBlock) -> None:
        with self._lock:
            self._blocks.append(block)

    def room(self) -> int:
        with self._lock:
            return max(0, self._capacity - len(self._blocks))

    def bits(self, parity: int | None = None) -> int:
        """Bits waiting (of the blocks whose sequence has ``parity``, if given)."""
        with self._lock:
            return sum(block.size_bits for block in self._blocks if parity is None or block.sequence % 2 == parity)

    def __len__(self) -> int:
        with self._lock:
            return len(self._blocks)

    def take(self, max_bits: int) -> list[KeyBlock]:
        out, budget = [], max_bits
        with self._lock:
            while self._blocks and self._blocks[0].size_bits <= budget:
                budget -= self._blocks[0].size_bits
                out.append(self._blocks.popleft())
        return out


T = TypeVar("T")


class LazyConnection(Generic[T]):
    """The connection to a device, made on first use (a source is built in every web
    worker, most never call their device); ``take`` hands it over for closing."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._connection: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._connection is None:
                self._connection = self._factory()
            return self._connection

    def take(self) -> T | None:
        with self._lock:
            connection, self._connection = self._connection, None
            return connection


class PairedDeviceSource(KeySource):
    """A link end fed by its QKD device, in step with the other end (module docs)."""

    on_demand = False
    protocol_name: str = ""
    #: Which settings model a section is read with, and the profile of a section naming none.
    protocol: ClassVar[Protocol]
    default_profile: ClassVar[str]

    def __init__(self, settings: DeviceSettings, context: SourceContext, role: Role,
                 clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._context = context
        self._role = role
        self._peer = context.peer_kme_id or ""
        low, high = sorted((context.kme_id, self._peer))
        self._link_id = context.link_id or f"{low}--{high}"
        self._clock = clock
        self._health = DeviceHealth(BreakerPolicy.of(settings), clock)
        self._queue = BlockQueue(settings.max_queued_blocks)
        self._sequences = SequenceClock()
        self._unused_bits: dict[str, int] = {}
        self._worker = SourceWorker(f"qkd-device {self._link_id}", STOP_JOIN_S)
        self._stopping = self._worker.stopping
        self._next_probe_at = clock()
        self._delivered: deque[tuple[float, int]] = deque()
        self._totals = {"blocks": 0, "bits": 0}
        self._stats_lock = threading.Lock()

    @classmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "PairedDeviceSource":
        settings = parse_settings(section, context, cls.protocol, cls.kind, cls.default_profile)
        check_files(settings)
        return cls(settings, context, resolve_role(settings, context))

    # --- what each protocol provides ----------------------------------------------------------

    @abstractmethod
    def _master_step(self) -> bool:
        """One attempt at a block as the master end (DeviceFault on failure); False when
        there was nothing to do (the worker then waits ``poll_interval_s``)."""

    @abstractmethod
    def _probe(self) -> None:
        """A liveness probe of the device, if one is due (``_probe_due``): the slave end's
        periodic work, and the master's while its pool is at the target."""

    @abstractmethod
    def _slave_copy(self, message: dict[str, Any]) -> tuple[str, bytes]:
        """(block id, this end's copy of the block) the offer ``message`` names, from
        this end's device; DeviceFault if it cannot be had, BadRequest if malformed."""

    def _respond_other(self, op: Any, message: dict[str, Any]) -> dict[str, Any]:
        """Answers to messages other than block offers (protocol-specific)."""
        raise BadRequest(f"unknown message for the {self.kind} source")

    def _release(self) -> None:
        """Close device sessions (at stop)."""

    # --- the master end ----------------------------------------------------------------------

    def observe_pool(self, unused_bits: dict[str, int]) -> None:
        self._unused_bits = {owner: max(0, int(bits)) for owner, bits in unused_bits.items()}

    def _probe_due(self) -> bool:
        """Whether it is time for a liveness probe of the device (then counted as done)."""
        if self._clock() < self._next_probe_at:
            return False
        self._next_probe_at = self._clock() + self._settings.probe_interval_s
        return True

    def _probed(self) -> None:
        """The device answered a probe: the breaker closes; with the pool at its target
        that is all this end has to do, so it counts as progress (no stall)."""
        self._health.succeeded(delivered=not self._wants_more())

    def _half_to_fill(self) -> int | None:
        """The parity of the pool half furthest below ``target_pool_bits / 2`` (with what
        waits here counted in), or None when both are at the target or the queue is full."""
        if self._queue.room() == 0:
            return None
        low, high = sorted((self._context.kme_id, self._peer))
        deficits = {parity: self._settings.target_pool_bits // 2 - self._unused_bits.get(owner, 0)
                    - self._queue.bits(parity) for parity, owner in ((0, low), (1, high))}
        parity = max(deficits, key=deficits.get)
        return parity if deficits[parity] > 0 else None

    def _wants_more(self) -> bool:
        """Whether a pool half (and what waits here for it) is below its target level."""
        return self._half_to_fill() is not None

    def _offer(self, material: bytes, block_id: str, locator: dict[str, Any]) -> None:
        """Offer a gathered block to the slave end; queue it on ``ok`` (DeviceFault otherwise).
        Its sequence puts it in the pool half that most needs it."""
        eps_cor = self._settings.eps_cor
        sequence = self._sequences.next(self._half_to_fill())
        seed = check.new_seed(len(material), eps_cor)
        message = {"op": "block", "block_id": block_id, "sequence": sequence, **locator,
                   "seed": _b64(seed), "tag": _b64(check.tag(material, seed, eps_cor))}
        reply = self._exchange(message)
        if reply.get("result") == "mismatch":
            raise DeviceFault("mismatch", f"equality check failed: the two ends' devices delivered different "
                                          f"bytes for block {block_id}; dropped at both ends")
        self._expect_ok(reply)
        block = KeyBlock(block_id, check.kept(material, eps_cor), sequence)
        self._queue.put(block)
        self._count(block)

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        """The slave end's answer to ``message`` (DeviceFault if it cannot be had)."""
        if self._context.channel is None:
            raise DeviceFault("no_channel", "no KM channel to the slave end")
        try:
            return self._context.channel.exchange(message)
        except QkmsError as exc:
            raise DeviceFault("peer_unreachable", f"the slave end {self._peer} did not answer: {exc.message}") from None

    def _expect_ok(self, reply: dict[str, Any]) -> None:
        """DeviceFault unless the slave end answered ``ok`` (its reason, prefixed ``slave_``)."""
        result = reply.get("result")
        if result == "ok":
            return
        if result == "failed":
            kind, reason = str(reply.get("kind", "failed"))[:40], _printable(reply.get("reason", ""))
            retry = reply.get("retry_after_s")
            raise DeviceFault(f"slave_{kind}", f"slave end {self._peer}: {reason}",
                              float(retry) if isinstance(retry, (int, float)) and not isinstance(retry, bool) else None)
        raise DeviceFault("peer_malformed", f"the slave end {self._peer} answered with {str(result)[:40]!r}")

    # --- the slave end ------------------------------------------------------------------------

    def respond(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op != "block":
            return self._respond_other(op, message)
        if self._role != "slave":
            raise BadRequest("this end is the link's master: it takes no block offers")
        sequence = message.get("sequence")
        if isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 <= sequence <= MAX_SEQUENCE:
            raise BadRequest("sequence must be an integer in [0, 2^53)")
        seed, their_tag = _unb64(message.get("seed"), "seed"), _unb64(message.get("tag"), "tag")
        try:
            block_id, material = self._slave_copy(message)
        except DeviceFault as fault:
            log.warning("link %s: offered block not taken: %s", self._link_id, fault.message)
            return {"result": "failed", "kind": fault.kind, "reason": fault.message,
                    "retry_after_s": fault.retry_after_s}
        if block_id != message.get("block_id") or len(seed) != check.seed_bytes(len(material), self._settings.eps_cor):
            raise BadRequest("the offer's block id or seed does not fit its locator")
        if not check.same(material, seed, self._settings.eps_cor, their_tag):
            log.warning("link %s: block %s failed the equality check; dropped", self._link_id, block_id)
            return {"result": "mismatch"}
        self._context.inbox.put(self._link_id, [KeyBlock(block_id, check.kept(material, self._settings.eps_cor),
                                                         sequence)])
        return {"result": "ok"}

    def _take_inbox(self) -> None:
        """Move blocks the web workers left in the inbox into this instance's queue."""
        room = self._queue.room()
        if self._context.inbox is None or room == 0:
            return
        for block in self._context.inbox.take(self._link_id, room):
            self._queue.put(block)
            self._count(block)
            self._health.succeeded()

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start(self._run_master if self._role == "master" else self._run_slave)

    def stop(self) -> None:
        self._worker.stop()
        self._release()

    def step(self) -> bool:
        """One round of this end's worker, if the breaker and backoff allow one now: a
        block attempt (master) or a device probe when due (slave). False when there was nothing to
        do, or it may not go yet. The worker calls it; tests call it to drive an end."""
        if self._health.wait_s() > 0:
            return False
        if self._role == "master":
            return self._attempt(self._master_step)
        return self._attempt(lambda: self._probe() or True)

    def _run_master(self) -> None:
        while not self._stopping.is_set():
            wait = self._health.wait_s()
            if wait > 0:
                self._stopping.wait(min(wait, self._settings.poll_interval_s))
            elif not self.step():
                self._stopping.wait(self._settings.poll_interval_s)

    def _run_slave(self) -> None:
        while not self._stopping.wait(self._settings.poll_interval_s):
            self.step()

    def _attempt(self, step: Callable[[], bool]) -> bool:
        try:
            return step()
        except DeviceFault as fault:
            delay = self._health.failed(fault)
            log.warning("link %s: %s (next attempt in %.1f s)", self._link_id, fault.message, delay)
        except Exception:  # a bug or a broken setting must not end the worker silently
            log.exception("link %s: device step failed", self._link_id)
            self._health.failed(DeviceFault("internal", "device step failed unexpectedly (see log)"))
        return True

    # --- the KeySource contract ---------------------------------------------------------------

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        if self._role == "slave":
            self._take_inbox()
        return self._queue.take(max_bits)

    def _count(self, block: KeyBlock) -> None:
        now = self._clock()
        with self._stats_lock:
            self._totals["blocks"] += 1
            self._totals["bits"] += block.size_bits
            self._delivered.append((now, block.size_bits))
            while self._delivered and now - self._delivered[0][0] > RATE_WINDOW_S:
                self._delivered.popleft()

    def health(self) -> SourceHealth:
        with self._stats_lock:
            totals = dict(self._totals)
            window = sum(bits for _, bits in self._delivered)
        metrics = {"blocks_delivered": totals["blocks"], "bits_delivered": totals["bits"],
                   "secret_rate_bps": window / RATE_WINDOW_S, "queued_blocks": len(self._queue),
                   "unused_pool_bits": sum(self._unused_bits.values())}
        summary = f"{self._role} end, {totals['blocks']} blocks, {window / RATE_WINDOW_S:.0f} bit/s"
        return self._health.report(summary, metrics)

    @property
    def provenance(self) -> Provenance:
        return Provenance(("qkd-device",), (self.protocol_name, f"profile:{self._settings.profile}",
                                            "toeplitz-equality-check"), (self._context.kme_id, self._peer))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a Base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} must be standard Base64") from None


def _printable(value: Any, limit: int = 240) -> str:
    """A peer's or device's text as it may appear in a health reason: printable, short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text[:limit]
