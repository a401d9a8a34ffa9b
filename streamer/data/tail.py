"""``facestream tail ID``: read a stream's records from Redis, from its start or as a
consumer group member.

By default the tail is a reader of its own (plain XREAD, no group): it starts at the
beginning of the stream, so a re-run shows the records again and any number of readers
on one host each see all of them. Redis remembers nothing about it.

With a consumer ``group`` Redis remembers what the group has been given, so a tail that
is stopped and started again resumes where it left off instead of replaying or
skipping, and the members of one group share the records out between them: entries are
acknowledged only after the callback has taken them, and entries delivered to this
consumer but never acknowledged (the previous tail died between read and ack) are
handed out again first. A new group starts at the beginning of the stream.

Without ``follow`` the tail ends once the stream's final event (ended, stopped, failed)
is its latest on the events stream and every record before it has been read.
"""
from __future__ import annotations

import socket
import time
from typing import Any, Callable

import numpy as np
import redis

from streamer.data.events import FINAL_EVENTS, EventKind, decode_event
from streamer.data.record import BLENDSHAPE_NAMES, NAMED_VECTORS, FaceRecord
from streamer.data.redis_codec import decode_redis, events_key, key_prefix, stream_key
from workers.emotion_labels import EMOTION_CLASSES

DEFAULT_GROUP = "facestream-tail"
_READ_COUNT = 500
_EVENT_SCAN = 10_000   # recent events searched for a stream's final event
_RUN_STARTS = frozenset({EventKind.STARTED, EventKind.RESUMED, EventKind.RESTARTED})

OnRecord = Callable[[FaceRecord], None]


def default_consumer() -> str:
    return f"tail-{socket.gethostname()}"


def prefix_for(stream_id: str, status: dict | None = None, config: str | None = None) -> str:
    """The Redis key prefix a stream's records are under: the server's, read off the
    ``redis_stream`` key in its status of the stream, when there is one; otherwise
    ``redis.key_prefix`` of the local configuration (``config``, default ./ray_config.yaml,
    as ``facestream analyze`` reads it)."""
    if status and status.get("redis_stream"):
        return key_prefix(status["redis_stream"], stream_id)
    from streamer.config import load_config

    return load_config(config).redis.key_prefix


def tail(redis_url: str, stream_id: str, on_record: OnRecord, *, prefix: str = "facestream",
         group: str | None = None, consumer: str | None = None, follow: bool = False, block_ms: int = 1000,
         should_stop: Callable[[], bool] = lambda: False, ended: Callable[[], bool] | None = None) -> int:
    """Deliver the stream's records to ``on_record`` in order; returns how many.

    ``group`` None reads on its own from the start; a name reads as ``consumer`` (default
    :func:`default_consumer`) of that consumer group. ``ended`` is asked, besides the events
    stream, whether the stream is over (the service's status: a stream that failed before
    it could write its final event has none).

    Raises ``redis.RedisError`` subclasses when Redis cannot be reached.
    """
    client = redis.Redis.from_url(redis_url, socket_timeout=max(5.0, block_ms / 1000 + 5),
                                  socket_connect_timeout=5.0)
    key = stream_key(prefix, stream_id)
    try:
        reader: _Reader = (_OwnReader(client, key) if group is None
                           else _GroupReader(client, key, group, consumer or default_consumer()))
        delivered = reader.pending(on_record)
        while not should_stop():
            n = reader.read(on_record, block_ms)
            delivered += n
            if n == 0 and not follow and (final_event(client, prefix, stream_id) is not None
                                          or (ended is not None and ended())):
                # the final event is written after the last record: one more read settles it
                delivered += reader.read(on_record, None)
                break
        return delivered
    finally:
        client.close()


class _Reader:
    """One way of reading a stream: ``read`` delivers entries until none is left (waiting
    up to ``block_ms`` for the first, then returning after that batch so the caller can
    check for the end), ``pending`` what an earlier run was given but did not take."""

    def pending(self, on_record: OnRecord) -> int:
        return 0

    def read(self, on_record: OnRecord, block_ms: int | None) -> int:
        raise NotImplementedError


class _OwnReader(_Reader):
    """XREAD from the start of the stream, remembering the last id in this process only."""

    def __init__(self, client: redis.Redis, key: str):
        self._client, self._key, self._last = client, key, "0"

    def read(self, on_record: OnRecord, block_ms: int | None) -> int:
        total = 0
        while True:
            reply: Any = self._client.xread({self._key: self._last}, count=_READ_COUNT,
                                            block=block_ms if total == 0 else None)
            entries = reply[0][1] if reply else []
            if not entries:
                return total
            for _entry_id, fields in entries:
                on_record(decode_redis(fields))
            self._last = entries[-1][0]
            total += len(entries)
            if block_ms is not None:
                return total


class _GroupReader(_Reader):
    """XREADGROUP as ``consumer`` of ``group`` (made at the stream's start if new),
    acknowledging each batch once the callback has taken it."""

    def __init__(self, client: redis.Redis, key: str, group: str, consumer: str):
        self._client, self._key, self._group, self._consumer = client, key, group, consumer
        try:
            client.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def pending(self, on_record: OnRecord) -> int:
        return self._drain("0", on_record, None)

    def read(self, on_record: OnRecord, block_ms: int | None) -> int:
        return self._drain(">", on_record, block_ms)

    def _drain(self, start: str, on_record: OnRecord, block_ms: int | None) -> int:
        """Read and acknowledge until nothing is left from ``start`` ("0": this consumer's
        pending entries; ">": new ones, waiting up to ``block_ms`` for the first)."""
        total = 0
        while True:
            reply: Any = self._client.xreadgroup(self._group, self._consumer, {self._key: start},
                                                 count=_READ_COUNT,
                                                 block=block_ms if (start == ">" and total == 0) else None)
            entries = reply[0][1] if reply else []
            entries = [(i, f) for i, f in entries if f]   # pending entries trimmed away come back empty
            if not entries:
                return total
            for _entry_id, fields in entries:
                on_record(decode_redis(fields))
            self._client.xack(self._key, self._group, *[entry_id for entry_id, _ in entries])
            total += len(entries)
            if start == ">" and block_ms is not None:
                return total  # return to the caller between blocking reads (stop checks)


def final_event(client: redis.Redis, prefix: str, stream_id: str) -> dict[str, Any] | None:
    """The stream's final event (ended, stopped, failed: a failed one says why in
    ``error``) when no run of it began since, else None: a stream restarted under the same
    id has a ``started`` or ``resumed`` after its old final event, and is not over."""
    latest: Any = client.xrevrange(events_key(prefix), count=_EVENT_SCAN)
    for _, fields in latest:
        event = decode_event(fields)
        if event["stream_id"] != stream_id:
            continue
        if event["kind"] in FINAL_EVENTS:
            return event
        if event["kind"] in _RUN_STARTS:
            return None
    return None


def stream_end(redis_url: str, prefix: str, stream_id: str) -> dict[str, Any] | None:
    """:func:`final_event`, by URL (what the CLI asks once a tail is done)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        return final_event(client, prefix, stream_id)
    finally:
        client.close()


def record_json(rec: FaceRecord) -> dict:
    """A record as plain JSON types: pose and blendshapes by name, as in Parquet and in
    ``facestream predict --json``; emotion probabilities by class; other vectors as lists."""
    import dataclasses

    out: dict[str, Any] = {}
    for f in dataclasses.fields(rec):
        value = getattr(rec, f.name)
        if f.name in NAMED_VECTORS:
            out[f.name] = {n: round(float(v), 6) for n, v in zip(NAMED_VECTORS[f.name], value)}
        elif f.name in ("emotion_probs", "emotion_probs_raw"):
            # by class name (JSON carries no schema metadata); null where none was computed
            out[f.name] = (dict(zip(EMOTION_CLASSES, (round(float(v), 6) for v in value)))
                           if np.isfinite(value).all() else None)
        elif f.name == "presence":   # null when unknown: JSON has no NaN
            out[f.name] = round(float(value), 6) if np.isfinite(value) else None
        else:
            out[f.name] = [round(float(v), 6) for v in value] if isinstance(value, np.ndarray) else value
    return out


def record_line(rec: FaceRecord, blend_names: tuple[str, ...] = BLENDSHAPE_NAMES) -> str:
    """One readable line: frame, time, track and person, pose, emotion (the smoothed label and the
    probability of the most likely class) and the strongest blendshape weights."""
    yaw, pitch, roll = (float(v) for v in rec.pose[:3])
    top = sorted(zip(blend_names, rec.blendshapes.tolist()), key=lambda nw: -nw[1])[:3]
    emotion = ""
    if rec.emotion:
        best = float(np.max(rec.emotion_probs)) if np.isfinite(rec.emotion_probs).all() else None
        emotion = f"{rec.emotion}" + ("" if best is None else f" {best:.2f}") + "  "
    person = "" if rec.person_id is None else f" person {rec.person_id}"
    return (f"{rec.stream_id} frame {rec.frame_index} t={rec.pts:.3f}s track {rec.track_id}{person}  "
            f"yaw {yaw:+.1f} pitch {pitch:+.1f} roll {roll:+.1f}  " + emotion
            + "".join(f"{n} {w:.2f}  " for n, w in top)
            + f"lag {max(0.0, time.time() - rec.wall_time):.2f}s")
