"""LinkManagerRecords on Redis: two JSON strings in the node's namespace.

  qkms:{N}:linkd:heartbeat   string  {"pid", "at"}, expiring after the heartbeat TTL
  qkms:{N}:linkd:supervisor  string  the supervisor record
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import redis

from kms.errors import StoreError
from kms.link_manager_state import Heartbeat, LinkManagerRecords, SupervisorRecord


class RedisLinkManagerRecords(LinkManagerRecords):
    """The link manager records of node ``kme_id``."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        self._heartbeat_key = f"qkms:{{{kme_id}}}:linkd:heartbeat"
        self._record_key = f"qkms:{{{kme_id}}}:linkd:supervisor"

    def beat(self, heartbeat: Heartbeat, ttl_s: float) -> None:
        self._call(self._redis.set, self._heartbeat_key, json.dumps(asdict(heartbeat)), px=max(1, int(ttl_s * 1000)))

    def record(self, record: SupervisorRecord) -> None:
        self._call(self._redis.set, self._record_key, json.dumps(asdict(record)))

    def read(self) -> tuple[Heartbeat | None, SupervisorRecord | None]:
        heartbeat, record = self._call(self._redis.mget, [self._heartbeat_key, self._record_key])
        return _load(Heartbeat, heartbeat), _load(SupervisorRecord, record)

    @staticmethod
    def _call(command, *args, **kwargs) -> Any:
        try:
            return command(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreError() from exc


def _load(kind: type, raw: bytes | None) -> Any:
    """A record written by this module, or None (absent, or from an incompatible version)."""
    if raw is None:
        return None
    try:
        return kind(**json.loads(raw))
    except (ValueError, TypeError):
        return None
