"""The service's streams where a restarted service finds them: one Redis hash.

A stream's definition (what was submitted) and where it stands (state, the end's time,
error and counters) are written to ``{redis.key_prefix}:service:streams`` (field: the
stream id, value: JSON) when it is created, when its state changes and when it is
deleted or expires. The service writes to the Redis it already uses; the embedded one
keeps its data on disk (``redis.persist``), so a ``kill -9`` of ``facestream serve`` loses
no stream: at start the manager reads the hash back, lists the finished streams as they
were and resumes the ones that were running (:meth:`StreamManager.restore`).

The hash holds each source URL as submitted, credentials included (a resumed camera
needs them); on an external Redis, protect it as you protect the cameras. Erasing it
(``DEL facestream:service:streams`` with the service stopped) makes the next start begin
with no streams.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from streamer.pipeline.status import StreamProgress, StreamState, StreamSummary

log = logging.getLogger(__name__)


def registry_key(prefix: str) -> str:
    """The hash that holds a deployment's streams."""
    return f"{prefix}:service:streams"


@dataclass(frozen=True)
class StreamDefinition:
    """What was submitted: enough to start the stream again, the same way."""

    id: str
    url: str                 # as submitted, credentials included (a resumed camera needs them)
    shown: str               # as shown to clients: credentials redacted
    name: str | None
    fps: float | None
    options: dict[str, Any]
    created_at: str


@dataclass
class StoredStream:
    """One stream as the registry keeps it: its definition and where it stands."""

    definition: StreamDefinition
    state: StreamState
    runs: int = 1                          # runs so far (a restart on request adds one)
    ended_at: str | None = None
    ended_epoch: float | None = None       # time.time() of the end: when it expires
    error: str | None = None
    progress: StreamProgress | None = None
    summary: StreamSummary | None = None

    def expired(self, now: float, ttl_s: float) -> bool:
        """Finished at least ``ttl_s`` ago (``service.finished_ttl_s``; 0: never)."""
        return (ttl_s > 0 and not self.state.active and self.ended_epoch is not None
                and now - self.ended_epoch >= ttl_s)

    def to_json(self) -> dict[str, Any]:
        d = self.definition
        return {"id": d.id, "url": d.url, "shown": d.shown, "name": d.name, "fps": d.fps,
                "options": d.options, "created_at": d.created_at, "state": self.state.value, "runs": self.runs,
                "ended_at": self.ended_at, "ended_epoch": self.ended_epoch, "error": self.error,
                "progress": self.progress.to_json() if self.progress is not None else None,
                "summary": self.summary.to_json() if self.summary is not None else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredStream:
        data = dict(data)
        definition = StreamDefinition(**{k: data.pop(k) for k in
                                         ("id", "url", "shown", "name", "fps", "options", "created_at")})
        progress, summary = data.pop("progress", None), data.pop("summary", None)
        values = {k: data[k] for k in ("runs", "ended_at", "ended_epoch", "error") if k in data}
        return cls(definition=definition, state=StreamState(data["state"]),
                   progress=StreamProgress.from_json(progress) if progress is not None else None,
                   summary=StreamSummary.from_json(summary) if summary is not None else None, **values)


class StreamRegistry:
    """Read and write the hash. A write that fails is logged, not raised: a stream must
    not fail because its bookkeeping could not be saved (its records go to the same
    Redis and are buffered by its sink meanwhile)."""

    def __init__(self, url: str, prefix: str, timeout_s: float):
        from streamer.data.sinks.redis_sink import redis_client

        self.key = registry_key(prefix)
        self._client = redis_client(url, timeout_s)

    def load(self) -> list[StoredStream]:
        """Every stream the hash holds (an entry that does not parse is logged and left out)."""
        raw: Any = self._client.hgetall(self.key)
        out = []
        for stream_id, value in raw.items():
            try:
                out.append(StoredStream.from_json(json.loads(value)))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("registry entry %r is unreadable, left out: %s", stream_id, e)
        return sorted(out, key=lambda s: (s.definition.created_at, s.definition.id))

    def save(self, stream: StoredStream) -> None:
        try:
            self._client.hset(self.key, stream.definition.id, json.dumps(stream.to_json()))
        except redis.RedisError as e:
            log.warning("could not save stream %r to %s: %s", stream.definition.id, self.key, e)

    def remove(self, stream_id: str) -> None:
        try:
            self._client.hdel(self.key, stream_id)
        except redis.RedisError as e:
            log.warning("could not remove stream %r from %s: %s", stream_id, self.key, e)

    def close(self) -> None:
        self._client.close()
