"""strongSwan: the key becomes an RFC 8784 post-quantum preshared key (PPK), pushed to
charon over VICI, with PPK_ID = key_ID.

A PPK applies when an IKE_SA is created, so the order matters: the responder loads the
PPK for a key_ID first (it keeps the previous one too, for an initiator still on it);
only then does the initiator load it, reload its connection with ``ppk_id = key_ID``
and ``ppk_required = yes``, and establish a new IKE_SA (the old one is deleted after
the new one is up: make before break). The agent pair guarantees the order: the
initiating agent installs after the responder has acknowledged.
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any

from adapters.connectors.errors import ConnectorError
from adapters.connectors.installer import KeyInstaller
from kms.extras import optional_dependency

ROLES = ("initiator", "responder")


def vici_session(path: str) -> Any:
    """A VICI session on charon's unix socket."""
    with optional_dependency(extra="connect", feature="the strongSwan connector"):
        import vici
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.settimeout(30)
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise ConnectorError(f"cannot reach charon's VICI socket {path}: {exc.strerror or exc}") from None
    return vici.Session(sock)


class StrongSwanInstaller(KeyInstaller):
    """PPKs of one IKE connection, at its initiator or its responder."""

    application = "strongswan"
    key_bytes = 32
    keep_at_responder = 2

    def __init__(self, role: str, vici_socket: str, conn: dict[str, dict] | None = None,
                 ike: str | None = None, timeout_s: float = 10.0,
                 session_factory: Callable[[str], Any] = vici_session):
        if role not in ROLES:
            raise ConnectorError(f"role must be one of {', '.join(ROLES)}")
        if role == "initiator" and (not conn or len(conn) != 1):
            raise ConnectorError("the initiator needs its connection, as one {name: settings} mapping")
        self.role = role
        self.socket_path = vici_socket
        self.conn = copy.deepcopy(conn) if conn else None
        self.ike = next(iter(conn)) if conn else ike
        self.timeout_ms = str(int(timeout_s * 1000))
        self._session_factory = session_factory
        self._loaded: list[str] = []  # PPK_IDs this installer loaded, oldest first

    def install(self, key: bytes, key_id: str) -> None:
        self.check_key(key)
        with self._session() as session:
            self._load_ppk(session, key_id, key)
            if self.role == "initiator":
                self._establish(session, key_id)
            self._unload_all_but(session, 1 if self.role == "initiator" else self.keep_at_responder)

    def fail_closed(self) -> None:
        ppk_id = f"qkms-fail-closed-{secrets.token_hex(8)}"
        with self._session() as session:
            self._load_ppk(session, ppk_id, self.random_key())
            if self.conn:
                self._load_conn(session, ppk_id)
            self._unload_all_but(session, 1)
            for ike_id in self._ike_sa_ids(session):
                self._terminate(session, ike_id)

    @staticmethod
    def shared_id(ppk_id: str) -> str:
        """The VICI id of the shared secret holding the PPK for ``ppk_id``."""
        return f"qkms-ppk-{ppk_id}"

    def _load_ppk(self, session, ppk_id: str, key: bytes) -> None:
        self._call(session.load_shared, {"id": self.shared_id(ppk_id), "type": "PPK", "data": key,
                                         "owners": [ppk_id]})
        self._loaded.append(ppk_id)

    def _unload_all_but(self, session, keep: int) -> None:
        while len(self._loaded) > keep:
            self._call(session.unload_shared, {"id": self.shared_id(self._loaded.pop(0))})

    def _load_conn(self, session, ppk_id: str) -> None:
        conn = copy.deepcopy(self.conn)
        conn[self.ike].update({"ppk_id": ppk_id, "ppk_required": "yes"})
        self._call(session.load_conn, conn)

    def _establish(self, session, ppk_id: str) -> None:
        """A new IKE_SA under ``ppk_id``, then the old ones deleted."""
        old = self._ike_sa_ids(session)
        self._load_conn(session, ppk_id)
        self._call(lambda: list(session.initiate({"ike": self.ike, "timeout": self.timeout_ms})))
        for ike_id in old:
            self._terminate(session, ike_id)

    def _ike_sa_ids(self, session) -> list[str]:
        if not self.ike:
            return []
        sas = self._call(lambda: list(session.list_sas({"ike": self.ike})))
        return [_text(sa[name]["uniqueid"]) for sa in sas for name in sa]

    def _terminate(self, session, ike_id: str) -> None:
        # An SA that went away meanwhile is what we wanted.
        with contextlib.suppress(ConnectorError):
            self._call(lambda: list(session.terminate({"ike-id": ike_id, "timeout": self.timeout_ms})))

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        session = self._session_factory(self.socket_path)
        try:
            yield session
        finally:
            sock = getattr(getattr(session, "transport", None), "socket", None)
            if sock is not None:
                sock.close()

    @staticmethod
    def _call(function, *args):
        """Run a VICI command; its failures (never carrying key material) as ConnectorError."""
        try:
            return function(*args)
        except ConnectorError:
            raise
        except Exception as exc:  # vici raises CommandException, SessionException, OSError
            raise ConnectorError(f"charon refused: {type(exc).__name__}: {exc}") from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
