"""qkms.layout.free_port: a layout (and a test) picks every port before any server binds
one, so no port may be handed out twice; the kernel readily offers a port it just
released again (3,000 picks in a row repeated one in every trial we made)."""

from __future__ import annotations

from qkms.layout import free_port


def test_ports_picked_in_a_row_are_all_different() -> None:
    ports = [free_port() for _ in range(3000)]
    assert len(set(ports)) == len(ports)
