"""``facestream tail ID``: read a stream's records from Redis as a consumer group member.

A consumer group remembers what it has been given, so a tail that is stopped and
started again resumes where it left off instead of replaying or skipping: entries are
acknowledged only after the callback has taken them, and entries delivered to this
consumer but never acknowledged (the previous tail died between read and ack) are
handed out again first. A new group starts at the beginning of the stream.

Without ``follow`` the tail ends once the stream's final event (ended, stopped, failed)
is on the events stream and every record before it has been read.
"""
from __future__ import annotations

import socket
import time
from typing import Any, Callable

import numpy as np
import redis

from streamer.data.events import FINAL_EVENTS, decode_event
from streamer.data.record import BLENDSHAPE_NAMES, NAMED_VECTORS, FaceRecord
from streamer.data.redis_codec import decode_redis, events_key, key_prefix, stream_key
from workers.emotion_labels import EMOTION_CLASSES

DEFAULT_GROUP = "facestream-tail"
_READ_COUNT = 500
_EVENT_SCAN = 10_000   # recent events searched for a stream's final event


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


def tail(redis_url: str, stream_id: str, on_record: Callable[[FaceRecord], None], *,
         prefix: str = "facestream", group: str = DEFAULT_GROUP, consumer: str | None = None,
         follow: bool = False, block_ms: int = 1000, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Deliver the stream's records to ``on_record`` in order; returns how many.

    Raises ``redis.RedisError`` subclasses when Redis cannot be reached.
    """
    client = redis.Redis.from_url(redis_url, socket_timeout=max(5.0, block_ms / 1000 + 5),
                                  socket_connect_timeout=5.0)
    key, consumer = stream_key(prefix, stream_id), consumer or default_consumer()
    try:
        try:
            client.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        delivered = _drain(client, key, group, consumer, "0", on_record, block_ms=None)  # own pending
        while not should_stop():
            n = _drain(client, key, group, consumer, ">", on_record, block_ms=block_ms)
            delivered += n
            if n == 0 and not follow and _finished(client, prefix, stream_id):
                # the final event is written after the last record: one more read settles it
                delivered += _drain(client, key, group, consumer, ">", on_record, block_ms=None)
                break
        return delivered
    finally:
        client.close()


def _drain(client: redis.Redis, key: str, group: str, consumer: str, start: str,
           on_record: Callable[[FaceRecord], None], block_ms: int | None) -> int:
    """Read and acknowledge until nothing is left from ``start`` ("0": this consumer's
    pending entries; ">": new ones, waiting up to ``block_ms`` for the first)."""
    total = 0
    while True:
        reply: Any = client.xreadgroup(group, consumer, {key: start}, count=_READ_COUNT,
                                       block=block_ms if (start == ">" and total == 0) else None)
        entries = reply[0][1] if reply else []
        entries = [(i, f) for i, f in entries if f]   # pending entries trimmed away come back empty
        if not entries:
            return total
        for _entry_id, fields in entries:
            on_record(decode_redis(fields))
        client.xack(key, group, *[entry_id for entry_id, _ in entries])
        total += len(entries)
        if start == ">" and block_ms is not None:
            return total  # return to the caller between blocking reads (stop checks)


def _finished(client: redis.Redis, prefix: str, stream_id: str) -> bool:
    latest: Any = client.xrevrange(events_key(prefix), count=_EVENT_SCAN)
    for _, fields in latest:
        event = decode_event(fields)
        if event["stream_id"] == stream_id and event["kind"] in FINAL_EVENTS:
            return True
    return False


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
