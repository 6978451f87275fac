"""Connections from kms.storage.redis_client: the readiness check redis-py makes on
every pooled connection still finds a reply left unread, with the kernel's poll."""

from __future__ import annotations

from kms.storage.redis_client import ReadinessParser, redis_client


def test_a_pooled_connection_reports_an_unread_reply_and_nothing_once_it_is_read(redis_url: str) -> None:
    client = redis_client(redis_url)
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, ReadinessParser)
        assert connection.can_read() is False
        connection.send_command("PING")
        assert connection.can_read(timeout=5) is True  # waits until the reply is there
        assert connection.can_read() is True  # the zero-timeout check this parser answers itself
        assert connection.read_response() in (b"PONG", "PONG", True)
        assert connection.can_read() is False
    finally:
        client.connection_pool.release(connection)
        client.close()
