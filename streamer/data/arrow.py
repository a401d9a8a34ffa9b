"""FaceRecords as Arrow tables: the Parquet schema, and the upgrade of older files.

ARROW_SCHEMA is the Parquet schema: one column per FaceRecord field, in its order, with
the names of the numbers (pose fields, blendshapes, emotion classes) in the schema
metadata, so a file says how to read itself. Files of every earlier version
(:mod:`streamer.data.version`) read through :func:`upgrade_table` as this version's.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from streamer.data.record import (
    BLENDSHAPE_NAMES,
    COLUMNS,
    NAMED_VECTORS,
    POSE_FIELDS,
    VECTOR_DIMS,
    BoxSource,
    FaceRecord,
)
from streamer.data.version import SCHEMA_VERSION, check_version
from workers.emotion_labels import EMOTION_ABSTAIN, EMOTION_CLASSES

# columns older data may lack, and what a record read from it holds there: the emotion
# columns came in version 2, box_source and presence during version 3, person_id in 4
ADDED_COLUMNS = {"emotion": "", "emotion_probs": None, "emotion_raw": "", "emotion_probs_raw": None,
                 "box_source": BoxSource.DETECTOR.value, "presence": float("nan"), "person_id": None}
# the only column that may hold nulls: data without persons says so rather than inventing them
NULLABLE = frozenset({"person_id"})
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
    if name in VECTOR_DIMS:
        return pa.list_(pa.float32(), VECTOR_DIMS[name])
    return _SCALAR_TYPES[name]


ARROW_SCHEMA = pa.schema(
    [pa.field(name, _arrow_type(name), nullable=name in NULLABLE) for name in COLUMNS],
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
    dim = VECTOR_DIMS[name]
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
    return pa.FixedSizeListArray.from_arrays(flat, VECTOR_DIMS[name])


def vector_matrix(column: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
    """(n, dim) float32 rows of the vector column ``name`` in either layout: a struct
    (read by field name, version 3) or a fixed-size list (versions 1 and 2); null rows are
    NaN. One writable copy, so a record may hold a row view of it."""
    dim = VECTOR_DIMS[name]
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
        _vector_array(_record_matrix(records, name), name) if name in VECTOR_DIMS
        else pa.array([getattr(r, name) for r in records], type=_SCALAR_TYPES[name])
        for name in COLUMNS
    ]
    return pa.Table.from_arrays(columns, schema=schema_with_metadata(metadata))


def _missing_column(name: str, n: int) -> pa.Array:
    """What older data reads as in a column it did not have (ADDED_COLUMNS)."""
    if name in VECTOR_DIMS:
        return _vector_array(np.full((n, VECTOR_DIMS[name]), np.nan, np.float32), name)
    return pa.array([ADDED_COLUMNS[name]] * n, type=_SCALAR_TYPES[name])


def upgrade_table(table: pa.Table) -> pa.Table:
    """A table of any readable schema version in this version's ARROW_SCHEMA layout.

    Fixed-size lists of pose and blendshapes (versions 1 and 2) become named structs;
    version 1 gets emotion "" and NaN probabilities; data without box_source or presence
    gets "detector" and NaN, before version 4 person_id is null (ADDED_COLUMNS); extra
    columns (a Hive partition column) are dropped. Upgraded metadata says this version's
    layout and, under ``facestream.upgraded_from``, the version the data was written in.
    """
    meta = dict(table.schema.metadata or {})
    version = meta.get(_VERSION_KEY)
    check_version(version)
    missing = [c for c in COLUMNS if c not in table.column_names and c not in ADDED_COLUMNS]
    if missing:
        raise ValueError(f"table lacks facestream columns: {', '.join(missing)}")
    columns = []
    for field in ARROW_SCHEMA:
        if field.name not in table.column_names:
            columns.append(_missing_column(field.name, len(table)))
            continue
        column = table.column(field.name)
        if column.type != field.type:
            column = (_vector_array(vector_matrix(column, field.name), field.name) if field.name in VECTOR_DIMS
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
        name: vector_matrix(table.column(name), name) if name in VECTOR_DIMS else table.column(name).to_pylist()
        for name in COLUMNS
    }
    values["box_source"] = [BoxSource(v) for v in values["box_source"]]
    return [FaceRecord(**{name: values[name][i] for name in COLUMNS}) for i in range(len(table))]
