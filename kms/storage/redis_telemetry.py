"""TelemetryStore on Redis: plain JSON (samples, alarms and curves are not secret).

  qkms:{N}:telemetry:halves          set    "<link>|<owner>" of every half with samples
  qkms:{N}:telemetry:s:<link>|<owner> list  samples, newest first, at most SAMPLES_KEPT
  qkms:{N}:telemetry:alarms          list   alarms, newest first, at most ALARMS_KEPT
  qkms:{N}:telemetry:curves          hash   link -> rate-versus-distance curve
"""

from __future__ import annotations

import json
from typing import Any

import redis

from kms.errors import StoreError
from kms.telemetry import ALARMS_KEPT, SAMPLES_KEPT, Alarm, LinkSample, TelemetryStore


class RedisTelemetryStore(TelemetryStore):
    """The telemetry of node ``kme_id``."""

    def __init__(self, client: redis.Redis, kme_id: str):
        self._redis = client
        self._prefix = f"qkms:{{{kme_id}}}:telemetry:"

    def record(self, samples: list[LinkSample], alarms: list[Alarm]) -> None:
        if not samples and not alarms:
            return
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for sample in samples:
                    half = f"{sample.link_id}|{sample.owner}"
                    pipe.sadd(self._prefix + "halves", half)
                    pipe.lpush(self._prefix + "s:" + half, json.dumps(sample.to_dict()))
                    pipe.ltrim(self._prefix + "s:" + half, 0, SAMPLES_KEPT - 1)
                if alarms:
                    pipe.lpush(self._prefix + "alarms", *(json.dumps(a.to_dict()) for a in alarms))
                    pipe.ltrim(self._prefix + "alarms", 0, ALARMS_KEPT - 1)
                pipe.execute()
        except redis.RedisError as exc:
            raise StoreError() from exc

    def samples(self, since: float = 0.0) -> dict[tuple[str, str], list[LinkSample]]:
        try:
            halves = sorted(h.decode() for h in self._redis.smembers(self._prefix + "halves"))
            with self._redis.pipeline(transaction=False) as pipe:
                for half in halves:
                    pipe.lrange(self._prefix + "s:" + half, 0, -1)
                lists = pipe.execute()
        except redis.RedisError as exc:
            raise StoreError() from exc
        out = {}
        for half, raw in zip(halves, lists):
            newer = [LinkSample(**json.loads(item)) for item in reversed(raw)]
            link_id, _, owner = half.rpartition("|")
            out[link_id, owner] = [s for s in newer if s.at > since]
        return out

    def alarms(self, since: float = 0.0) -> list[Alarm]:
        raw = self._call(self._redis.lrange, self._prefix + "alarms", 0, -1)
        alarms = [Alarm(**json.loads(item)) for item in reversed(raw)]
        return [a for a in alarms if a.at > since]

    def put_rate_curve(self, link_id: str, curve: dict[str, Any]) -> None:
        self._call(self._redis.hset, self._prefix + "curves", link_id, json.dumps(curve))

    def rate_curve(self, link_id: str) -> dict[str, Any] | None:
        raw = self._call(self._redis.hget, self._prefix + "curves", link_id)
        return None if raw is None else json.loads(raw)

    @staticmethod
    def _call(command, *args) -> Any:
        try:
            return command(*args)
        except redis.RedisError as exc:
            raise StoreError() from exc
