"""The agent pair: one agent beside each end of a tunnel, each an SAE of its own node.

The initiating agent calls ``enc_keys`` (it is the key's master SAE) and announces the
key_ID to the responding agent over the channel; the responder calls ``dec_keys`` (the
slave SAE), installs the key and acknowledges with a confirmation value derived from
the key; the initiator checks it and installs last. The protocol, its timing rules and
its failure behaviour are in docs/connectors.md. Both agents fail closed (a random key)
when they start, on any failure, when no fresh key came in time, and when they stop.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass

from adapters.connectors.channel import ANNOUNCE_PATH, WITHDRAW_PATH, ChannelClient, ChannelServer
from adapters.connectors.derive import derive_key
from adapters.connectors.errors import ConnectorError
from adapters.connectors.installer import KeyInstaller
from adapters.etsi014_client import Etsi014Client
from kms.errors import BadRequest

log = logging.getLogger("qkms.connect")

CONFIRM_BYTES = 16


@dataclass(frozen=True)
class AgentSettings:
    """What both agents of a pair agree on (times in seconds, sizes in bits)."""

    tunnel: str
    peer_sae: str
    interval_s: float = 120.0
    retry_s: float = 10.0
    grace_s: float = 30.0
    size_bits: int = 256

    @property
    def valid_for_s(self) -> float:
        """How long the responder keeps a key without a newer one before failing closed."""
        return self.interval_s + self.grace_s


def _describe(exc: Exception) -> str:
    """A log-safe account of a failure (our errors never carry key material)."""
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


class _Agent:
    role = ""

    def __init__(self, installer: KeyInstaller, kme: Etsi014Client, settings: AgentSettings):
        self.installer = installer
        self.kme = kme
        self.settings = settings
        self._lock = threading.RLock()
        self.state = "starting"
        self.reason = "no key agreed yet"
        self.sequence = 0
        self.rotations = 0
        self.failures = 0
        self.installed_at: float | None = None
        self.timings_ms: dict[str, float] = {}

    def derive(self, material: bytes, key_id: str, purpose: str, length: int) -> bytes:
        return derive_key(material, length, purpose, self.installer.application, self.settings.tunnel, key_id)

    def install(self, material: bytes, key_id: str, sequence: int) -> None:
        with self._lock:
            self.installer.install(self.derive(material, key_id, "key", self.installer.key_bytes), key_id)
            self.state, self.reason, self.sequence = "keyed", "", sequence
            self.installed_at = time.monotonic()
            self.rotations += 1
        log.info("tunnel %s: key %s (sequence %d) installed", self.settings.tunnel, key_id, sequence)

    def fail_closed(self, reason: str) -> None:
        """Install a random key; if even that fails, say so loudly (and stay failed)."""
        with self._lock:
            self.state, self.reason = "fail-closed", reason
            self.installed_at = None
            try:
                self.installer.fail_closed()
            except Exception as exc:
                log.error("tunnel %s: FAILING CLOSED FAILED (%s): %s", self.settings.tunnel, reason, _describe(exc))
                self.reason = f"{reason}; installing a random key failed too: {_describe(exc)}"
                return
        log.warning("tunnel %s: failed closed (random key installed): %s", self.settings.tunnel, reason)

    def status(self) -> dict:
        """The status a monitor or firewall probes (no key_ID: its binding to the tunnel is private)."""
        with self._lock:
            age = None if self.installed_at is None else round(time.monotonic() - self.installed_at, 3)
            return {"tunnel": self.settings.tunnel, "application": self.installer.application, "role": self.role,
                    "peer_SAE_ID": self.settings.peer_sae, "state": self.state, "reason": self.reason,
                    "sequence": self.sequence, "key_age_s": age, "rotations": self.rotations,
                    "failures": self.failures, "last_rotation_ms": dict(self.timings_ms)}


class InitiatorAgent(_Agent):
    """Asks its node for each key, announces it, installs it after the responder's ack."""

    role = "initiator"

    def __init__(self, installer: KeyInstaller, kme: Etsi014Client, settings: AgentSettings, peer: ChannelClient):
        super().__init__(installer, kme, settings)
        self.peer = peer

    def run(self, stop: threading.Event) -> None:
        """Rotate every ``interval_s`` (``retry_s`` after a failure) until ``stop``."""
        self.fail_closed("starting: no key agreed yet")
        try:
            while not stop.is_set():
                wait_s = self.settings.interval_s if self.rotate() else self.settings.retry_s
                if stop.wait(wait_s):
                    break
        finally:
            self.withdraw("the initiating agent stopped")

    def rotate(self) -> bool:
        """One rotation; False (and failed closed at both ends, as far as reachable) on any failure."""
        started = time.monotonic()
        try:
            (key,) = self.kme.enc_keys(self.settings.peer_sae, number=1, size_bits=self.settings.size_bits)
            fetched = time.monotonic()
            sequence = self.sequence + 1
            ack = self.peer.post(ANNOUNCE_PATH, {
                "tunnel": self.settings.tunnel, "application": self.installer.application, "key_ID": key.key_id,
                "sequence": sequence, "valid_for_s": self.settings.valid_for_s})
            acked = time.monotonic()
            expected = self.derive(key.material, key.key_id, "confirm", CONFIRM_BYTES)
            if not hmac.compare_digest(_hex_bytes(ack.get("confirm")), expected):
                raise ConnectorError("the responding agent confirmed another key")
            self.install(key.material, key.key_id, sequence)
        except Exception as exc:
            self.failures += 1
            self.withdraw(f"rotation failed: {_describe(exc)}")
            return False
        done = time.monotonic()
        self.timings_ms = {"enc_keys": _ms(fetched - started), "peer_fetch_install_ack": _ms(acked - fetched),
                           "install": _ms(done - acked), "enc_keys_to_installed_at_both": _ms(done - started)}
        return True

    def withdraw(self, reason: str) -> None:
        """Fail closed here, and tell the responder to (best effort: it also times out)."""
        self.fail_closed(reason)
        try:
            self.peer.post(WITHDRAW_PATH, {"tunnel": self.settings.tunnel})
        except ConnectorError as exc:
            log.info("tunnel %s: could not tell the responder to fail closed: %s", self.settings.tunnel, exc.message)


class ResponderAgent(_Agent):
    """Fetches announced keys from its node, installs them, and acknowledges."""

    role = "responder"

    def __init__(self, installer: KeyInstaller, kme: Etsi014Client, settings: AgentSettings):
        super().__init__(installer, kme, settings)
        self.deadline: float | None = None

    def routes(self) -> dict:
        return {ANNOUNCE_PATH: self.announce, WITHDRAW_PATH: self.withdraw}

    def run(self, stop: threading.Event, server: ChannelServer) -> None:
        """Serve the channel; fail closed when no new key came within ``valid_for_s``."""
        self.fail_closed("starting: no key agreed yet")
        server.start()
        try:
            while not stop.wait(0.2):
                with self._lock:
                    expired = self.state == "keyed" and self.deadline is not None and time.monotonic() > self.deadline
                if expired:
                    self.fail_closed("no new key from the initiating agent in time")
        finally:
            server.stop()
            self.fail_closed("the responding agent stopped")

    def announce(self, body: dict) -> dict:
        """Fetch, install and confirm the announced key (any failure: fail closed, then raise)."""
        with self._lock:
            try:
                key_id, sequence, valid_for_s = self._check_announcement(body)
                (key,) = self.kme.dec_keys(self.settings.peer_sae, [key_id])
                self.install(key.material, key.key_id, sequence)
                self.deadline = time.monotonic() + valid_for_s
            except Exception as exc:
                self.failures += 1
                self.fail_closed(f"announced key not installed: {_describe(exc)}")
                if isinstance(exc, BadRequest):
                    raise
                raise ConnectorError(f"key not installed: {_describe(exc)}") from None
            confirm = self.derive(key.material, key_id, "confirm", CONFIRM_BYTES)
        return {"tunnel": self.settings.tunnel, "key_ID": key_id, "sequence": sequence, "confirm": confirm.hex()}

    def withdraw(self, body: dict) -> dict:
        self.fail_closed("the initiating agent withdrew the key")
        return {"tunnel": self.settings.tunnel, "state": "fail-closed"}

    def _check_announcement(self, body: dict) -> tuple[str, int, float]:
        if body.get("tunnel") != self.settings.tunnel or body.get("application") != self.installer.application:
            raise BadRequest("announcement for another tunnel or application")
        try:
            key_id = str(uuid.UUID(str(body.get("key_ID"))))
        except ValueError:
            raise BadRequest("key_ID must be a UUID") from None
        sequence, valid_for_s = body.get("sequence"), body.get("valid_for_s")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
            raise BadRequest("sequence must be a positive integer")
        if not isinstance(valid_for_s, (int, float)) or not 0 < valid_for_s <= 86400:
            raise BadRequest("valid_for_s must be between 0 and 86400")
        return key_id, sequence, float(valid_for_s)


def _hex_bytes(value) -> bytes:
    try:
        return bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        return b""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
