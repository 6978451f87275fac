"""Where the embedded Redis listens: a unix socket in the node's data dir, or under the
temp dir when the data dir's path is too long for AF_UNIX (108 bytes with the NUL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kms.storage.embedded_redis import EmbeddedRedis, embedded_url
from kms.storage.redis_client import redis_client


def test_a_short_data_dir_holds_the_socket() -> None:
    assert embedded_url(Path("/srv/qkms/data")) == "unix:///srv/qkms/data/redis.sock"


@pytest.mark.integration
def test_a_data_dir_too_long_for_a_unix_socket_still_serves(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 110)
    with EmbeddedRedis(data_dir) as server:
        assert server.url == embedded_url(data_dir)
        assert not server.url.startswith(f"unix://{data_dir}")
        client = redis_client(embedded_url(data_dir))
        try:
            assert client.set("reached", "yes") and client.get("reached") == b"yes"
        finally:
            client.close()
    assert not server.socket_path.exists()
