"""A recording stand-in for a VICI session (charon's state as far as PPKs go)."""

from __future__ import annotations

import itertools


class RecordingVici:
    """What a charon would hold: shared secrets, connections, IKE_SAs."""

    def __init__(self):
        self.shared: dict[str, tuple[bytes, list[str]]] = {}
        self.conns: dict[str, dict] = {}
        self.sas: dict[str, str] = {}  # unique id -> connection name
        self._ids = itertools.count(1)

    def session(self, path: str) -> "RecordingVici":
        return self

    def load_shared(self, message: dict) -> None:
        assert message["type"] == "PPK" and isinstance(message["data"], bytes)
        self.shared.pop(message["id"], None)
        self.shared[message["id"]] = (message["data"], list(message["owners"]))

    def unload_shared(self, message: dict) -> None:
        del self.shared[message["id"]]

    def load_conn(self, message: dict) -> None:
        self.conns.update(message)

    def initiate(self, message: dict):
        conn = self.conns[message["ike"]]
        assert conn["ppk_required"] == "yes" and self.ppk_for(conn["ppk_id"]) is not None
        self.sas[str(next(self._ids))] = message["ike"]
        yield {"msg": b"IKE_SA established"}

    def list_sas(self, message: dict):
        for unique_id, name in list(self.sas.items()):
            if name == message["ike"]:
                yield {name: {"uniqueid": unique_id.encode(), "state": b"ESTABLISHED"}}

    def terminate(self, message: dict):
        del self.sas[message["ike-id"]]
        yield {"msg": b"IKE_SA deleted"}

    def ppk_for(self, ppk_id: str) -> bytes | None:
        return next((data for data, owners in self.shared.values() if ppk_id in owners), None)

    def current_ppk(self, installer) -> bytes | None:
        """The PPK the installer's side would use for its next IKE_SA."""
        if installer.role == "initiator":
            conn = self.conns.get(installer.ike)
            return self.ppk_for(conn["ppk_id"]) if conn else None
        return next(reversed(self.shared.values()))[0] if self.shared else None
