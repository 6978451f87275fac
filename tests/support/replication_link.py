"""The network in front of a Redis master, as a TCP forwarder whose replication traffic
can be cut: once ``cut()`` returns, whatever the master sends on a replication
connection never reaches the replica, while the replica's acknowledgements still reach
the master and every other connection (clients, sentinels) flows on. That is the
replication lag of a congested or partitioned link, made exact: the master confirms a
write to its client, its replica never holds it, and a failover then loses it unless
the client waited for the replica (Redis WAIT, ``redis.min_replicas_acked``).

Everyone reaches the master through the forwarder, the sentinels too: a sentinel that
saw the replica follow another address than the master it monitors would repoint the
replica at the master directly (``+fix-slave-config``), around the cut."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from qkms.layout import free_port

#: A connection whose first bytes from its client carry one of these is a replica's.
REPLICATION_COMMANDS = (b"REPLCONF", b"PSYNC", b"SYNC")


@dataclass
class _Connection:
    replication: bool = False


class ReplicationLink:
    """Listens on ``port`` and forwards to the master on ``master_port``."""

    def __init__(self, master_port: int):
        self.master_port = master_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._is_cut = False
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """From now on the master's bytes on replication connections are dropped."""
        with self._lock:
            self._is_cut = True

    def close(self) -> None:
        """Closes the listener and every forwarded connection."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                master = socket.create_connection(("127.0.0.1", self.master_port))
            except OSError:  # the master is down: the client sees the connection close
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, master]
            connection = _Connection()
            threading.Thread(target=self._pump, args=(client, master, connection, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(master, client, connection, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, connection: _Connection, from_master: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if not from_master and any(command in data for command in REPLICATION_COMMANDS):
                        connection.replication = True
                    if not (from_master and connection.replication and self._is_cut):
                        target.sendall(data)
        except OSError:
            pass
        _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
