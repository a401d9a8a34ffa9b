"""FaceRecord: the one value that flows from a stream session to the sinks.

Its Arrow schema is the Parquet schema; its Redis encoding and decoder live here too, so
no consumer ever parses fields by hand.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# 2: emotion, emotion_probs and their raw twins (issue 16). Version-1 files and entries
# still read: their records carry emotion "" (not computed) and NaN probabilities.
SCHEMA_VERSION = 2
N_EXP, N_SHAPE, N_BLEND = 29, 99, 53
POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
# The order of emotion_probs; readers take it from the schema metadata (emotion_classes),
# this constant is what writers put there.
EMOTION_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EMOTION_ABSTAIN = ("uncertain", "too_small", "too_turned")
N_EMOTION = len(EMOTION_CLASSES)


def _no_probs() -> np.ndarray:
    return np.full(N_EMOTION, np.nan, np.float32)


@dataclass
class FaceRecord:
    """One tracked face in one frame.

    pose = (yaw, pitch, roll) in degrees with AFLW2000-3D signs (see workers/pose.py),
    then (tx, ty) the image-plane position of the head centre in pixels and ``scale`` the
    pixels per centimetre of the face model at that depth. quaternion is (w, x, y, z) of
    the same rotation. Smoothed values sit in the plain fields, the network's per-frame
    output in the ``*_raw`` fields.

    emotion is one of EMOTION_CLASSES or an abstention (EMOTION_ABSTAIN: uncertain,
    too_small, too_turned), or "" where none was computed (schema version 1);
    emotion_probs are the classes' probabilities in EMOTION_CLASSES order (NaN without
    a classifier). The smoothed label is the label of the smoothed probabilities.
    """

    stream_id: str
    frame_index: int
    pts: float                      # seconds from the container's timestamps
    wall_time: float                # unix seconds when the record was made
    track_id: int
    box: np.ndarray                 # (4,) x1, y1, x2, y2 in pixels of the source frame
    score: float                    # detector confidence
    expression: np.ndarray          # (29,) smoothed eta
    pose: np.ndarray                # (6,) smoothed yaw, pitch, roll, tx, ty, scale
    quaternion: np.ndarray          # (4,) smoothed rotation
    shape: np.ndarray               # (99,) identity alpha (running mean over the track)
    blendshapes: np.ndarray         # (53,) smoothed eta read as ARKit-named blendshapes
    expression_raw: np.ndarray      # (29,)
    pose_raw: np.ndarray            # (6,)
    quaternion_raw: np.ndarray      # (4,)
    shape_raw: np.ndarray           # (99,)
    model_version: str = ""         # checkpoint name @ face model version + hash prefix
    emotion: str = ""               # label of the smoothed probabilities, or an abstention
    emotion_probs: np.ndarray = dataclasses.field(default_factory=_no_probs)      # (7,) smoothed
    emotion_raw: str = ""           # label of this frame's probabilities
    emotion_probs_raw: np.ndarray = dataclasses.field(default_factory=_no_probs)  # (7,)

    @property
    def record_id(self) -> str:
        """Idempotent identity of the record: one per (stream, frame, track)."""
        return f"{self.stream_id}:{self.frame_index}:{self.track_id}"


# --------------------------------------------------------------------------------------
# Arrow / Parquet
# --------------------------------------------------------------------------------------
# Float vectors in FaceRecord order, with their lengths. The Arrow columns and the packed
# Redis field both follow this order, so it is the single place that defines it.
VECTOR_FIELDS: tuple[tuple[str, int], ...] = (
    ("box", 4),
    ("expression", N_EXP),
    ("pose", len(POSE_FIELDS)),
    ("quaternion", 4),
    ("shape", N_SHAPE),
    ("blendshapes", N_BLEND),
    ("expression_raw", N_EXP),
    ("pose_raw", len(POSE_FIELDS)),
    ("quaternion_raw", 4),
    ("shape_raw", N_SHAPE),
    ("emotion_probs", N_EMOTION),       # version 2 on: the packed Redis field of version 1
    ("emotion_probs_raw", N_EMOTION),   # entries ends before these two
)
# columns version 1 did not have, and what a record read from it holds there
SINCE_V2 = {"emotion": "", "emotion_probs": None, "emotion_raw": "", "emotion_probs_raw": None}
_VECTOR_DIMS = dict(VECTOR_FIELDS)
_SCALAR_TYPES = {
    "stream_id": pa.string(),
    "frame_index": pa.int64(),
    "pts": pa.float64(),
    "wall_time": pa.float64(),
    "track_id": pa.int64(),
    "score": pa.float64(),
    "model_version": pa.string(),
    "emotion": pa.string(),
    "emotion_raw": pa.string(),
}
_COLUMNS = [f.name for f in dataclasses.fields(FaceRecord)]

SCHEMA_METADATA: dict[bytes, bytes] = {
    b"facestream.schema_version": str(SCHEMA_VERSION).encode(),
    b"facestream.pose_fields": ",".join(POSE_FIELDS).encode(),
    b"facestream.quaternion_order": b"w,x,y,z",
    b"facestream.pose_units": b"degrees (yaw,pitch,roll; AFLW2000-3D signs), pixels (tx,ty), pixels/cm (scale)",
    b"facestream.emotion_classes": ",".join(EMOTION_CLASSES).encode(),
    b"facestream.emotion_abstain": ",".join(EMOTION_ABSTAIN).encode(),
}


def emotion_classes(metadata: dict | None) -> tuple[str, ...]:
    """The order of ``emotion_probs`` in data with this schema metadata (bytes or str
    keys), falling back to this version's classes for data that does not say."""
    meta = {(k.decode() if isinstance(k, bytes) else k): v for k, v in (metadata or {}).items()}
    value = meta.get("facestream.emotion_classes")
    if not value:
        return EMOTION_CLASSES
    return tuple((value.decode() if isinstance(value, bytes) else value).split(","))


def _arrow_type(name: str) -> pa.DataType:
    if name in _VECTOR_DIMS:
        return pa.list_(pa.float32(), _VECTOR_DIMS[name])
    return _SCALAR_TYPES[name]


ARROW_SCHEMA = pa.schema(
    [pa.field(name, _arrow_type(name), nullable=False) for name in _COLUMNS],
    metadata=SCHEMA_METADATA,
)


def schema_with_metadata(metadata: dict[str, str] | None = None) -> pa.Schema:
    """ARROW_SCHEMA plus caller metadata (face model version/hash, checkpoint, ...)."""
    merged = dict(SCHEMA_METADATA)
    for key, value in (metadata or {}).items():
        merged[str(key).encode()] = str(value).encode()
    return ARROW_SCHEMA.with_metadata(merged)


def _vector_matrix(records: list[FaceRecord], name: str) -> np.ndarray:
    """(n, dim) float32 matrix of one vector field, built by one concatenate."""
    dim = _VECTOR_DIMS[name]
    if not records:
        return np.empty((0, dim), np.float32)
    flat = np.concatenate([getattr(r, name) for r in records], axis=None).astype(np.float32, copy=False)
    if flat.size != dim * len(records):
        bad = next(r for r in records if np.size(getattr(r, name)) != dim)
        raise ValueError(f"FaceRecord.{name} must have {dim} values, got {np.size(getattr(bad, name))}")
    return flat.reshape(len(records), dim)


def records_to_table(records: list[FaceRecord], metadata: dict[str, str] | None = None) -> pa.Table:
    """Columnar table in ARROW_SCHEMA; vectors are stacked once per column, not per row."""
    columns = []
    for name in _COLUMNS:
        if name in _VECTOR_DIMS:
            matrix = _vector_matrix(records, name)
            flat = pa.array(matrix.reshape(-1), type=pa.float32())
            columns.append(pa.FixedSizeListArray.from_arrays(flat, _VECTOR_DIMS[name]))
        else:
            columns.append(pa.array([getattr(r, name) for r in records], type=_SCALAR_TYPES[name]))
    return pa.Table.from_arrays(columns, schema=schema_with_metadata(metadata))


def _check_version(version: bytes | str | int | None) -> None:
    if version is not None and int(version) > SCHEMA_VERSION:
        raise ValueError(
            f"data has facestream schema version {int(version)}; this reader knows up to "
            f"{SCHEMA_VERSION} — upgrade facestream"
        )


def table_to_records(table: pa.Table) -> list[FaceRecord]:
    """FaceRecords from a table holding at least the ARROW_SCHEMA columns (extra ones,
    such as a Hive partition column, are ignored)."""
    _check_version((table.schema.metadata or {}).get(b"facestream.schema_version"))
    missing = [c for c in _COLUMNS if c not in table.column_names and c not in SINCE_V2]
    if missing:
        raise ValueError(f"table lacks facestream columns: {', '.join(missing)}")
    n = len(table)
    values: dict[str, list | np.ndarray] = {}
    for name in _COLUMNS:
        if name not in table.column_names:           # a version-1 file
            values[name] = np.full((n, N_EMOTION), np.nan, np.float32) if name in _VECTOR_DIMS else [""] * n
            continue
        column = table.column(name).combine_chunks()
        if name in _VECTOR_DIMS:
            # one writable copy per column; each record holds a row view of it. Null rows
            # (a version-1 part read beside newer ones) become NaN.
            matrix = np.full((n, _VECTOR_DIMS[name]), np.nan, np.float32)
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            flat = column.filter(column.is_valid()).flatten().to_numpy(zero_copy_only=False)
            matrix[valid] = np.asarray(flat, np.float32).reshape(-1, _VECTOR_DIMS[name])
            values[name] = matrix
        else:
            values[name] = ["" if v is None else v for v in column.to_pylist()]
    return [FaceRecord(**{name: values[name][i] for name in _COLUMNS}) for i in range(n)]


# --------------------------------------------------------------------------------------
# Redis Streams
# --------------------------------------------------------------------------------------
# Entry layout (all values bytes): v schema version, sid stream id, f frame index,
# t track id, pts / wt / s as repr() floats (exact round trip), m model version, e / er
# the smoothed / raw emotion label, and x = every VECTOR_FIELDS vector, concatenated in
# that order, little-endian float32 (version 1: no e / er, x without the emotion vectors).
_PACKED_DTYPE = np.dtype("<f4")
_PACKED_LEN = sum(d for _, d in VECTOR_FIELDS)
_PACKED_LEN_V1 = _PACKED_LEN - 2 * N_EMOTION
EVENT_KINDS = ("started", "resumed", "progress", "ended", "stopped", "failed", "reconnecting", "reconnected")
FINAL_EVENTS = ("ended", "stopped", "failed")  # the last event of a stream


def stream_key(prefix: str, stream_id: str) -> str:
    """Redis key of one video stream's records."""
    return f"{prefix}:stream:{stream_id}"


def events_key(prefix: str) -> str:
    """Redis key of the events stream shared by all video streams."""
    return f"{prefix}:events"


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
        "x": packed.tobytes(),
    }


def _text_keys(fields: dict) -> dict[str, bytes | str]:
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in fields.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_redis(fields: dict) -> FaceRecord:
    """FaceRecord from the fields of one stream entry (bytes or str keys)."""
    f = _text_keys(fields)
    version = int(_text(f["v"]))
    _check_version(version)
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
        stream_id=_text(f["sid"]),
        frame_index=int(f["f"]),
        pts=float(f["pts"]),
        wall_time=float(f["wt"]),
        track_id=int(f["t"]),
        score=float(f["s"]),
        model_version=_text(f["m"]),
        emotion=_text(f.get("e", b"")),
        emotion_raw=_text(f.get("er", b"")),
        **vectors,
    )


def encode_event(kind: str, stream_id: str, **info) -> dict[str, str]:
    """Fields of one events-stream entry: kind, stream_id, time, v, then each info value
    as JSON (so numbers, lists and nested dicts come back typed)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})")
    reserved = {"kind", "stream_id", "time", "v"} & info.keys()
    if reserved:
        raise ValueError(f"event info may not use reserved names: {', '.join(sorted(reserved))}")
    fields = {"v": str(SCHEMA_VERSION), "kind": kind, "stream_id": stream_id, "time": repr(time.time())}
    fields.update({key: json.dumps(value) for key, value in info.items()})
    return fields


def decode_event(fields: dict) -> dict:
    """Inverse of encode_event: {"kind", "stream_id", "time", **info}."""
    f = {k: _text(v) for k, v in _text_keys(fields).items()}
    _check_version(f.pop("v", None))
    event = {"kind": f.pop("kind"), "stream_id": f.pop("stream_id"), "time": float(f.pop("time"))}
    event.update({key: json.loads(value) for key, value in f.items()})
    return event
