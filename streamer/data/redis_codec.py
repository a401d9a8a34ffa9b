"""FaceRecords as Redis stream entries, and the keys they are written under.

Entry layout (all values bytes): v schema version, sid stream id, f frame index,
t track id, pts / wt / s as repr() floats (exact round trip), m model version, e / er
the smoothed / raw emotion label, bs the box source, p the presence (repr float), pid the
person id (absent where there is none), and x = every VECTOR_FIELDS vector, concatenated
in that order, little-endian float32 (about 1.4 kB an entry).

Older entries still read (:mod:`streamer.data.version`): version 1 has no e / er and x
ends before the emotion vectors; version 3 entries are laid out as version 2 plus bs and
p, which entries written before them lack (read "detector", NaN); version 4 adds pid.
The names of the numbers, which Parquet keeps in its schema metadata, come in each
stream's ``started`` event (:func:`stream_info`).
"""
from __future__ import annotations

import numpy as np

from streamer.data.record import BLENDSHAPE_NAMES, N_EMOTION, POSE_FIELDS, VECTOR_FIELDS, BoxSource, FaceRecord
from streamer.data.version import SCHEMA_VERSION, check_version
from workers.emotion_labels import EMOTION_CLASSES

_PACKED_DTYPE = np.dtype("<f4")
_PACKED_LEN = sum(d for _, d in VECTOR_FIELDS)
_PACKED_LEN_V1 = _PACKED_LEN - 2 * N_EMOTION


def stream_key(prefix: str, stream_id: str) -> str:
    """Redis key of one video stream's records."""
    return f"{prefix}:stream:{stream_id}"


def key_prefix(key: str, stream_id: str) -> str:
    """The prefix of ``key``, the inverse of ``stream_key(prefix, stream_id)``."""
    suffix = stream_key("", stream_id)
    if not key.endswith(suffix):
        raise ValueError(f"{key!r} is not the Redis key of stream {stream_id!r} (expected PREFIX{suffix})")
    return key[:-len(suffix)]


def events_key(prefix: str) -> str:
    """Redis key of the events stream shared by all video streams."""
    return f"{prefix}:events"


def stream_info() -> dict[str, list[str]]:
    """The names a Redis reader needs to read a stream's records by name (pose fields,
    blendshapes, emotion classes in the order of emotion_probs): RedisSink adds them to
    every ``started`` event, as ParquetSink puts SCHEMA_METADATA in every file."""
    return {"pose_fields": list(POSE_FIELDS), "blendshape_names": list(BLENDSHAPE_NAMES),
            "emotion_classes": list(EMOTION_CLASSES)}


def encode_redis(rec: FaceRecord) -> dict[str, bytes]:
    """Compact XADD fields for one record (about 1.4 kB, 1388 bytes of it vectors)."""
    packed = np.concatenate(
        [np.asarray(getattr(rec, name), dtype=_PACKED_DTYPE).reshape(-1) for name, _ in VECTOR_FIELDS]
    )
    if packed.size != _PACKED_LEN:
        raise ValueError(f"FaceRecord vectors hold {packed.size} values, expected {_PACKED_LEN}")
    return {
        "v": str(SCHEMA_VERSION).encode(),
        "sid": rec.stream_id.encode(),
        "f": str(int(rec.frame_index)).encode(),
        "t": str(int(rec.track_id)).encode(),
        "pts": repr(float(rec.pts)).encode(),
        "wt": repr(float(rec.wall_time)).encode(),
        "s": repr(float(rec.score)).encode(),
        "m": rec.model_version.encode(),
        "e": rec.emotion.encode(),
        "er": rec.emotion_raw.encode(),
        "bs": rec.box_source.encode(),
        "p": repr(float(rec.presence)).encode(),
        **({} if rec.person_id is None else {"pid": str(int(rec.person_id)).encode()}),
        "x": packed.tobytes(),
    }


def text_keys(fields: dict) -> dict[str, bytes | str]:
    """An entry's fields with str keys, as redis-py returns bytes or str by its options."""
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in fields.items()}


def text(value: bytes | str) -> str:
    """A field value as str."""
    return value.decode() if isinstance(value, bytes) else value


def decode_redis(fields: dict) -> FaceRecord:
    """FaceRecord from the fields of one stream entry (bytes or str keys)."""
    f = text_keys(fields)
    version = int(text(f["v"]))
    check_version(version)
    x = f["x"]
    if isinstance(x, str):
        raise TypeError("the packed vector field 'x' is binary: read entries with decode_responses=False")
    packed = np.frombuffer(x, dtype=_PACKED_DTYPE).astype(np.float32)
    want = _PACKED_LEN_V1 if version < 2 else _PACKED_LEN
    if packed.size != want:
        raise ValueError(f"packed vector field holds {packed.size} values, expected {want}")
    vectors, offset = {}, 0
    for name, dim in VECTOR_FIELDS:
        if offset >= packed.size:            # version 1: the emotion vectors are not there
            break
        vectors[name] = packed[offset:offset + dim]
        offset += dim
    return FaceRecord(
        stream_id=text(f["sid"]),
        frame_index=int(f["f"]),
        pts=float(f["pts"]),
        wall_time=float(f["wt"]),
        track_id=int(f["t"]),
        score=float(f["s"]),
        model_version=text(f["m"]),
        emotion=text(f.get("e", b"")),
        emotion_raw=text(f.get("er", b"")),
        box_source=BoxSource(text(f.get("bs", BoxSource.DETECTOR.value))),
        presence=float(f.get("p", b"nan")),
        person_id=int(f["pid"]) if "pid" in f else None,
        **vectors,
    )
