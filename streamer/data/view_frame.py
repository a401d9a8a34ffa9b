"""One frame of a watched stream as the live view reads it from Redis, and its key names.

The live view (streamer/view/) marks a stream watched with :func:`watch_key` (a short
TTL, refreshed while a page shows it); the stream's session, seeing the mark, leaves a
small JPEG of a frame and that frame's FaceRecords under :func:`frame_key` (a short
TTL too, so a stream that ends or stops sending leaves nothing behind). Only the newest
frame is kept: the view shows what is happening now, a few times a second.

The frame is one Redis hash: ``f`` frame index, ``pts`` / ``wt`` / ``sc`` repr floats
(``sc``: JPEG pixels per source pixel), ``jpg`` the JPEG bytes, ``n`` the number of
records and, for record ``i``, its :func:`~streamer.data.redis_codec.encode_redis` fields
prefixed ``i.``: the records keep the one encoding the Redis stream uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from streamer.data.record import FaceRecord
from streamer.data.redis_codec import decode_redis, encode_redis, text, text_keys


def watch_key(prefix: str, stream_id: str) -> str:
    """Redis key whose presence says someone watches ``stream_id`` in the live view."""
    return f"{prefix}:view:watch:{stream_id}"


def frame_key(prefix: str, stream_id: str) -> str:
    """Redis key of the newest frame ``stream_id`` left for the live view."""
    return f"{prefix}:view:frame:{stream_id}"


@dataclass
class ViewFrame:
    """A frame as the view shows it: the JPEG (downscaled by ``scale``) and the records
    of that frame, whose boxes and positions are in source pixels."""

    frame_index: int
    pts: float
    wall_time: float
    scale: float
    jpeg: bytes
    records: list[FaceRecord] = field(default_factory=list)


def encode_view_frame(frame: ViewFrame) -> dict[str, bytes]:
    """The Redis hash fields of ``frame`` (HSET mapping)."""
    fields = {"f": str(int(frame.frame_index)).encode(), "pts": repr(float(frame.pts)).encode(),
              "wt": repr(float(frame.wall_time)).encode(), "sc": repr(float(frame.scale)).encode(),
              "jpg": frame.jpeg, "n": str(len(frame.records)).encode()}
    for i, rec in enumerate(frame.records):
        fields.update({f"{i}.{k}": v for k, v in encode_redis(rec).items()})
    return fields


def decode_view_frame(fields: dict) -> ViewFrame | None:
    """The frame in the fields of HGETALL (bytes or str keys), or None for an empty hash."""
    f = text_keys(fields)
    if "jpg" not in f:
        return None
    jpeg = f["jpg"]
    if isinstance(jpeg, str):
        raise TypeError("the JPEG field 'jpg' is binary: read frames with decode_responses=False")
    records = []
    for i in range(int(f["n"])):
        prefix = f"{i}."
        records.append(decode_redis({k[len(prefix):]: v for k, v in f.items() if k.startswith(prefix)}))
    return ViewFrame(int(f["f"]), float(text(f["pts"])), float(text(f["wt"])), float(text(f["sc"])), jpeg, records)
