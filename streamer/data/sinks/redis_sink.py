"""Publish FaceRecords to a Redis stream, exactly once and in order, across outages.

Every record gets an explicit entry id derived from the record itself,
``{frame_index + 1}-{seq}`` (seq = position within its frame, tracks in id order), so ids
strictly increase and a retry is idempotent: Redis refuses an id that is not above the
stream's top entry, and that refusal means "already written" (e.g. a pipeline that ran
but whose reply was lost when the connection dropped). While Redis is away records wait
in a bounded outbox (oldest dropped and counted beyond ``buffer_records``); each write or
flush retries at most every ``retry_s`` and never blocks for much more than
``connect_timeout_s``. Events go to the shared events stream through the same outbox, so
a consumer sees ``ended`` only after the records before it; they use server-assigned ids
and are at-least-once.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, ClassVar
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streamer.config import RedisConfig
from streamer.data.events import EventKind, encode_event
from streamer.data.record import FaceRecord
from streamer.data.redis_codec import decode_redis, encode_redis, events_key, stream_info, stream_key
from streamer.data.sinks.base import Committed, SinkError, SinkStats, check_stream
from streamer.sources.urls import redact

_ALREADY_WRITTEN = "equal or smaller than the target stream top item"
_PIPELINE_ENTRIES = 1000   # entries per round trip: ~1.4 MB of records
_COMMITTED_SCAN = 1000     # recent entries searched for the highest track id


@dataclass
class RedisStats(SinkStats):
    """published/events: entries written; duplicates: entries Redis already had
    (retries); buffered: waiting in the outbox; dropped: lost to a full outbox, a close
    while Redis is away, or an entry Redis refused; errors/last_error."""

    events: int = 0
    duplicates: int = 0
    dropped: int = 0
    errors: int = 0
    last_error: str | None = None

    _JSON_ORDER: ClassVar[tuple[str, ...]] = ("published", "events", "duplicates", "dropped", "errors",
                                              "last_error", "buffered")


def redis_client(url: str, timeout_s: float) -> redis.Redis:
    """A client whose every network step is bounded by timeout_s and that never retries
    on its own (redis-py's default backoff would block the caller; the sink retries)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


class RedisSink:
    """One video stream's records to ``stream_key(prefix, stream_id)``, events to
    ``events_key(prefix)``, both trimmed with ``MAXLEN ~ cfg.maxlen``."""

    def __init__(self, cfg: RedisConfig, stream_id: str, url: str):
        self.cfg = cfg
        self.stream_id = stream_id
        self.url = url
        self.key = stream_key(cfg.key_prefix, stream_id)
        self.events_key = events_key(cfg.key_prefix)
        self._client = redis_client(url, cfg.connect_timeout_s)
        self._outbox: deque[tuple[str, str, dict]] = deque()   # (key, entry id, fields)
        self._last_frame = -1
        self._last_seq = -1
        self._retry_at = 0.0
        self._closed = False
        self._counts = RedisStats()

    @staticmethod
    def check(url: str, timeout: float = 2.0) -> None:
        """Raise SinkError unless a Redis server answers PING at url within ~timeout."""
        try:
            client = redis_client(url, timeout)
        except ValueError as e:   # malformed URL or unknown scheme
            raise SinkError(f"cannot reach Redis at {redact(url)}: {e}") from None
        try:
            client.ping()
        except redis.RedisError as e:
            raise SinkError(f"cannot reach Redis at {redact(url)}: {_reason(e, url)}") from None
        finally:
            client.close()

    @property
    def stats(self) -> RedisStats:
        return replace(self._counts, buffered=len(self._outbox))

    def committed(self) -> Committed | None:
        """The stream's top entry (frame and pts) and the highest track id among the last
        entries; None when the stream is empty or Redis cannot say right now (then the
        caller reprocesses, and explicit ids keep Redis free of duplicates anyway)."""
        try:
            entries: Any = self._client.xrevrange(self.key, count=_COMMITTED_SCAN)
        except redis.RedisError:
            return None
        if not entries:
            return None
        records = [decode_redis(fields) for _, fields in entries]
        return Committed(records[0].frame_index, records[0].pts, max(r.track_id for r in records))

    def write(self, records: list[FaceRecord]) -> None:
        """Queue records (frames in non-decreasing order) and try to publish them."""
        self._check_open()
        check_stream(records, self.stream_id)
        entries = self._entries(sorted(records, key=lambda r: (r.frame_index, r.track_id)))
        for entry in entries:
            self._enqueue(entry)
        self._try_drain()

    def event(self, kind: EventKind, **info: Any) -> None:
        """Queue an event for this stream (started, progress, ended, failed, reconnecting).
        A ``started`` event also carries ``redis_codec.stream_info()``: the names of the
        numbers in the records that follow, as a Parquet file's schema metadata does."""
        self._check_open()
        if kind == EventKind.STARTED:
            info = {**stream_info(), **info}
        self._enqueue((self.events_key, "*", encode_event(kind, self.stream_id, **info)))
        self._try_drain()

    def flush(self, timeout: float | None = None) -> bool:
        """Try to publish everything queued for up to ``timeout`` seconds (default
        cfg.connect_timeout_s), retrying every cfg.retry_s. True when nothing is left."""
        deadline = time.monotonic() + (self.cfg.connect_timeout_s if timeout is None else timeout)
        while self._outbox:
            now = time.monotonic()
            if now >= deadline:
                break
            if now < self._retry_at:
                time.sleep(min(self._retry_at, deadline) - now)
                continue
            self._drain(deadline)
        return not self._outbox

    def close(self, timeout: float | None = None) -> None:
        """Flush (see ``flush``), count what is still queued as dropped, disconnect."""
        if self._closed:
            return
        self.flush(timeout)
        self._counts.dropped += len(self._outbox)
        self._outbox.clear()
        self._closed = True
        self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SinkError(f"RedisSink for stream {self.stream_id!r} is closed")

    def _entries(self, records: list[FaceRecord]) -> list[tuple[str, str, dict]]:
        if records and records[0].frame_index < self._last_frame:
            raise ValueError(
                f"records must arrive in frame order: frame {records[0].frame_index} after "
                f"frame {self._last_frame} on stream {self.stream_id!r}"
            )
        entries, frame, seq = [], self._last_frame, self._last_seq
        for rec in records:
            seq = seq + 1 if rec.frame_index == frame else 0
            frame = rec.frame_index
            entries.append((self.key, f"{frame + 1}-{seq}", encode_redis(rec)))
        self._last_frame, self._last_seq = frame, seq   # only once every record encoded
        return entries

    def _enqueue(self, entry: tuple[str, str, dict]) -> None:
        self._outbox.append(entry)
        while len(self._outbox) > self.cfg.buffer_records:
            self._outbox.popleft()
            self._counts.dropped += 1

    def _try_drain(self) -> None:
        if time.monotonic() >= self._retry_at:
            self._drain(time.monotonic() + self.cfg.connect_timeout_s)

    def _drain(self, deadline: float) -> None:
        """Publish from the head of the outbox until it is empty, the deadline passes or
        the connection fails (then the next attempt waits cfg.retry_s)."""
        while self._outbox and time.monotonic() < deadline:
            batch = list(islice(self._outbox, _PIPELINE_ENTRIES))
            pipe = self._client.pipeline(transaction=False)
            for key, entry_id, fields in batch:
                pipe.xadd(key, fields, id=entry_id, maxlen=self.cfg.maxlen, approximate=True)
            try:
                results = pipe.execute(raise_on_error=False)
            except redis.RedisError as e:   # connection lost, timeout, server still LOADING
                self._counts.errors += 1
                self._counts.last_error = _reason(e, self.url)
                self._retry_at = time.monotonic() + self.cfg.retry_s
                return
            for (key, _, _), result in zip(batch, results):
                self._outbox.popleft()
                self._account(key, result)

    def _account(self, key: str, result: Any) -> None:
        if not isinstance(result, Exception):
            if key == self.events_key:
                self._counts.events += 1
            else:
                self._counts.published += 1
        elif _ALREADY_WRITTEN in str(result):
            self._counts.duplicates += 1
        else:
            # Refused for another reason (wrong key type, out of memory): later entries of
            # the same pipeline may already be in, so retrying this one could not keep
            # the order — count it as dropped and say why.
            self._counts.errors += 1
            self._counts.dropped += 1
            self._counts.last_error = _reason(result, self.url)


def _reason(error: Exception, url: str) -> str:
    """str(error) without the URL's password, should the client library quote it."""
    text = str(error) or type(error).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
