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

from workers.emotion_labels import EMOTION_ABSTAIN, EMOTION_CLASSES

# 2: emotion, emotion_probs and their raw twins. Version-1 files and entries
# still read: their records carry emotion "" (not computed) and NaN probabilities.
# 3: pose, pose_raw and blendshapes are Arrow structs of named float32 fields, so SQL,
# pandas and polars read ``pose.yaw`` or ``blendshapes.jawOpen`` by name; the
# Redis entry layout is unchanged. Version-1 and -2 files are upgraded on read.
# Also in 3: box_source (whether the box came from the detector or from tracking between
# detector runs) and presence (track-driven detection); data without them reads "detector" and NaN.
# 4: person_id (streamer/persons/book.py): the tracks of one face share it; null where no
# identity was computed (data written before version 4, or with identity.enabled false).
SCHEMA_VERSION = 4
N_EXP, N_SHAPE = 29, 99
POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
# The face model's 53 ARKit-named expression blendshapes in its column order
# (workers.face_model.FaceModel.blend_names, from ICT-FaceKit; a test checks they agree).
# Kept here as a constant so that readers of the data never load the face model.
BLENDSHAPE_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L",
    "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L",
    "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L",
    "noseSneer_R",
)
N_BLEND = len(BLENDSHAPE_NAMES)
# EMOTION_CLASSES is the order of emotion_probs; readers take it from the schema metadata
# (emotion_classes), the constant is what writers put there.
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

    box_source says where the box came from: "detector" on frames the detector ran on,
    "tracking" between its runs, where the box is placed from the regressor's landmarks
    of the face in an earlier frame and the track's motion (streamer.tracking.follow).

    person_id is shared by the tracks of one face in this stream (streamer.persons.book): a
    person's id is the track id of its first track, so it never collides with another
    person's and reads as "the face first seen as track N".
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
    box_source: str = "detector"    # BOX_SOURCES: found by the detector, or placed by tracking
    presence: float = float("nan")  # probability that the crop framed a face (NaN: no probe)
    person_id: int | None = None    # who the face is within the stream (None: not computed)


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
# Vectors whose every component has a meaning of its own are Arrow structs of named
# float32 fields (version 3 on), so that a reader asks for ``pose.yaw`` rather than
# ``pose[1]``; coefficient vectors (eta, alpha), the box, the quaternion and the emotion
# probabilities (named in the metadata) stay fixed-size float32 lists.
NAMED_VECTORS: dict[str, tuple[str, ...]] = {
    "pose": POSE_FIELDS,
    "pose_raw": POSE_FIELDS,
    "blendshapes": BLENDSHAPE_NAMES,
}
BOX_SOURCES = ("detector", "tracking")
# columns older data may lack, and what a record read from it holds there: the emotion
# columns came in version 2, box_source and presence during version 3
ADDED_COLUMNS = {"emotion": "", "emotion_probs": None, "emotion_raw": "", "emotion_probs_raw": None,
                 "box_source": "detector", "presence": float("nan"), "person_id": None}
# the only column that may hold nulls: data without persons says so rather than inventing them
NULLABLE = frozenset({"person_id"})
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
    "box_source": pa.string(),
    "presence": pa.float32(),
    "person_id": pa.int64(),
}
_COLUMNS = [f.name for f in dataclasses.fields(FaceRecord)]
_VERSION_KEY = b"facestream.schema_version"

SCHEMA_METADATA: dict[bytes, bytes] = {
    _VERSION_KEY: str(SCHEMA_VERSION).encode(),
    b"facestream.pose_fields": ",".join(POSE_FIELDS).encode(),
    b"facestream.quaternion_order": b"w,x,y,z",
    b"facestream.pose_units": b"degrees (yaw,pitch,roll; AFLW2000-3D signs), pixels (tx,ty), pixels/cm (scale)",
    b"facestream.blendshape_names": ",".join(BLENDSHAPE_NAMES).encode(),
    b"facestream.emotion_classes": ",".join(EMOTION_CLASSES).encode(),
    b"facestream.emotion_abstain": ",".join(EMOTION_ABSTAIN).encode(),
}


def _names(metadata: dict | None, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    meta = {(k.decode() if isinstance(k, bytes) else k): v for k, v in (metadata or {}).items()}
    value = meta.get(key)
    if not value:
        return default
    return tuple((value.decode() if isinstance(value, bytes) else value).split(","))


def emotion_classes(metadata: dict | None) -> tuple[str, ...]:
    """The order of ``emotion_probs`` in data with this schema metadata (bytes or str
    keys), falling back to this version's classes for data that does not say."""
    return _names(metadata, "facestream.emotion_classes", EMOTION_CLASSES)


def blendshape_names(metadata: dict | None) -> tuple[str, ...]:
    """The names of the ``blendshapes`` in data with this schema metadata, falling back
    to BLENDSHAPE_NAMES (versions 1 and 2 did not say; they had these)."""
    return _names(metadata, "facestream.blendshape_names", BLENDSHAPE_NAMES)


def _arrow_type(name: str) -> pa.DataType:
    if name in NAMED_VECTORS:
        return pa.struct([pa.field(n, pa.float32(), nullable=False) for n in NAMED_VECTORS[name]])
    if name in _VECTOR_DIMS:
        return pa.list_(pa.float32(), _VECTOR_DIMS[name])
    return _SCALAR_TYPES[name]


ARROW_SCHEMA = pa.schema(
    [pa.field(name, _arrow_type(name), nullable=name in NULLABLE) for name in _COLUMNS],
    metadata=SCHEMA_METADATA,
)


def schema_with_metadata(metadata: dict[str, str] | None = None) -> pa.Schema:
    """ARROW_SCHEMA plus caller metadata (face model version/hash, checkpoint, ...)."""
    merged = dict(SCHEMA_METADATA)
    for key, value in (metadata or {}).items():
        merged[str(key).encode()] = str(value).encode()
    return ARROW_SCHEMA.with_metadata(merged)


def _record_matrix(records: list[FaceRecord], name: str) -> np.ndarray:
    """(n, dim) float32 matrix of one vector field, built by one concatenate."""
    dim = _VECTOR_DIMS[name]
    if not records:
        return np.empty((0, dim), np.float32)
    flat = np.concatenate([getattr(r, name) for r in records], axis=None).astype(np.float32, copy=False)
    if flat.size != dim * len(records):
        bad = next(r for r in records if np.size(getattr(r, name)) != dim)
        raise ValueError(f"FaceRecord.{name} must have {dim} values, got {np.size(getattr(bad, name))}")
    return flat.reshape(len(records), dim)


def _vector_array(matrix: np.ndarray, name: str) -> pa.Array:
    """(n, dim) float32 rows as the column's Arrow type: a struct or a fixed-size list."""
    if name in NAMED_VECTORS:
        children = np.ascontiguousarray(matrix.T, np.float32)
        return pa.StructArray.from_arrays([pa.array(c) for c in children], fields=list(_arrow_type(name)))
    flat = pa.array(np.ascontiguousarray(matrix, np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, _VECTOR_DIMS[name])


def vector_matrix(column: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
    """(n, dim) float32 rows of the vector column ``name`` in either layout: a struct
    (read by field name, version 3) or a fixed-size list (versions 1 and 2); null rows are
    NaN. One writable copy, so a record may hold a row view of it."""
    dim = _VECTOR_DIMS[name]
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    out = np.full((len(column), dim), np.nan, np.float32)
    if pa.types.is_struct(column.type):
        children = dict(zip((f.name for f in column.type), column.flatten()))
        missing = [n for n in NAMED_VECTORS[name] if n not in children]
        if missing:
            raise ValueError(f"column {name} lacks the fields {', '.join(missing)}")
        for i, field in enumerate(NAMED_VECTORS[name]):
            out[:, i] = children[field].to_numpy(zero_copy_only=False)
        return out
    valid = column.is_valid()
    flat = column.filter(valid).flatten().to_numpy(zero_copy_only=False)
    out[valid.to_numpy(zero_copy_only=False)] = np.asarray(flat, np.float32).reshape(-1, dim)
    return out


def records_to_table(records: list[FaceRecord], metadata: dict[str, str] | None = None) -> pa.Table:
    """Columnar table in ARROW_SCHEMA; vectors are stacked once per column, not per row."""
    columns = [
        _vector_array(_record_matrix(records, name), name) if name in _VECTOR_DIMS
        else pa.array([getattr(r, name) for r in records], type=_SCALAR_TYPES[name])
        for name in _COLUMNS
    ]
    return pa.Table.from_arrays(columns, schema=schema_with_metadata(metadata))


def _check_version(version: bytes | str | int | None) -> None:
    if version is not None and int(version) > SCHEMA_VERSION:
        raise ValueError(
            f"data has facestream schema version {int(version)}; this reader knows up to "
            f"{SCHEMA_VERSION} — upgrade facestream"
        )


def _missing_column(name: str, n: int) -> pa.Array:
    """What older data reads as in a column it did not have (ADDED_COLUMNS)."""
    if name in _VECTOR_DIMS:
        return _vector_array(np.full((n, _VECTOR_DIMS[name]), np.nan, np.float32), name)
    return pa.array([ADDED_COLUMNS[name]] * n, type=_SCALAR_TYPES[name])


def upgrade_table(table: pa.Table) -> pa.Table:
    """A table of any readable schema version in this version's ARROW_SCHEMA layout.

    Fixed-size lists of pose and blendshapes (versions 1 and 2) become named structs;
    version 1 gets emotion "" and NaN probabilities; data without box_source or presence
    gets "detector" and NaN, before version 4 person_id is null (ADDED_COLUMNS); extra columns (a Hive partition
    column) are dropped. Upgraded metadata says this version's layout and, under
    ``facestream.upgraded_from``, the version the data was written in.
    """
    meta = dict(table.schema.metadata or {})
    version = meta.get(_VERSION_KEY)
    _check_version(version)
    missing = [c for c in _COLUMNS if c not in table.column_names and c not in ADDED_COLUMNS]
    if missing:
        raise ValueError(f"table lacks facestream columns: {', '.join(missing)}")
    columns = []
    for field in ARROW_SCHEMA:
        if field.name not in table.column_names:
            columns.append(_missing_column(field.name, len(table)))
            continue
        column = table.column(field.name)
        if column.type != field.type:
            column = (_vector_array(vector_matrix(column, field.name), field.name) if field.name in _VECTOR_DIMS
                      else column.cast(field.type))
        columns.append(column)
    if version is not None and int(version) < SCHEMA_VERSION:
        meta = {**SCHEMA_METADATA, **meta, _VERSION_KEY: SCHEMA_METADATA[_VERSION_KEY],
                b"facestream.blendshape_names": SCHEMA_METADATA[b"facestream.blendshape_names"],
                b"facestream.upgraded_from": version}
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA.with_metadata(meta))


def table_to_records(table: pa.Table) -> list[FaceRecord]:
    """FaceRecords from a table of any readable schema version (see upgrade_table)."""
    table = upgrade_table(table)
    values = {
        name: vector_matrix(table.column(name), name) if name in _VECTOR_DIMS else table.column(name).to_pylist()
        for name in _COLUMNS
    }
    return [FaceRecord(**{name: values[name][i] for name in _COLUMNS}) for i in range(len(table))]


# --------------------------------------------------------------------------------------
# Redis Streams
# --------------------------------------------------------------------------------------
# Entry layout (all values bytes): v schema version, sid stream id, f frame index,
# t track id, pts / wt / s as repr() floats (exact round trip), m model version, e / er
# the smoothed / raw emotion label, bs the box source, p the presence (repr float), and
# x = every VECTOR_FIELDS vector, concatenated in that order, little-endian float32
# (version 1: no e / er, x without the emotion vectors; version 3 entries are laid out as
# version 2 plus bs and p, which entries written before them lack: read "detector", NaN; version 4
# adds pid, the person id, absent where there is none). The names of the
# numbers, which Parquet keeps in its schema metadata, come in each stream's ``started`` event (stream_info).
_PACKED_DTYPE = np.dtype("<f4")
_PACKED_LEN = sum(d for _, d in VECTOR_FIELDS)
_PACKED_LEN_V1 = _PACKED_LEN - 2 * N_EMOTION
# cut: a hard shot cut at frame_index / pts ended every track (ended_tracks of them)
# person: a track was given its person (new, linked to an earlier track's, or split off
# a track whose identity jumped: streamer.persons.book.PersonEvent)
EVENT_KINDS = ("started", "resumed", "progress", "cut", "person", "ended", "stopped", "failed", "reconnecting",
               "reconnected")
FINAL_EVENTS = ("ended", "stopped", "failed")  # the last event of a stream


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
        box_source=_text(f.get("bs", b"detector")),
        presence=float(f.get("p", b"nan")),
        person_id=int(f["pid"]) if "pid" in f else None,
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
