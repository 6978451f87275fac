"""Connections from kms.storage.redis_client: the readiness check redis-py makes on
every pooled connection still finds a reply left unread, with the kernel's poll (also
where gevent has patched ``select``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kms.storage.redis_client import ReadinessParser, redis_client

ROOT = Path(__file__).resolve().parents[2]


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


def test_in_a_gevent_patched_process_the_check_takes_the_kernels_poll_not_gevents() -> None:
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import select\n"
            "from kms.storage.redis_client import _kernel_poll\n"
            "assert select.poll is not monkey.get_original('select', 'poll'), 'gevent did not patch poll'\n"
            "assert _kernel_poll() is monkey.get_original('select', 'poll')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
