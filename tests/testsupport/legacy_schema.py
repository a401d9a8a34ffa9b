"""Tables as older facestream versions wrote them, for tests that read old data.

(A helper module rather than a conftest: tests import ``conftest`` by name, and a second
one would shadow tests/conftest.py.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pyarrow as pa

from streamer.data.record import BoxSource, FaceRecord

# The metadata of schema versions 1 and 2, as they wrote it.
_V1_METADATA = {
    b"facestream.schema_version": b"1",
    b"facestream.pose_fields": b"yaw,pitch,roll,tx,ty,scale",
    b"facestream.quaternion_order": b"w,x,y,z",
    b"facestream.pose_units": b"degrees (yaw,pitch,roll; AFLW2000-3D signs), pixels (tx,ty), pixels/cm (scale)",
}
_V2_METADATA = {
    **_V1_METADATA,
    b"facestream.schema_version": b"2",
    b"facestream.emotion_classes": b"angry,disgust,fear,happy,neutral,sad,surprise",
    b"facestream.emotion_abstain": b"uncertain,too_small,too_turned",
}


def legacy_table(records: list[FaceRecord], version: int = 2) -> pa.Table:
    """The table that schema version 1 or 2 wrote for these records: every vector a
    fixed-size float32 list (pose by position, 53 unnamed blendshapes), version 1 without
    the emotion columns. Spelt out here rather than derived from streamer.data.arrow, because
    it is what old files on disk hold. Neither had box_source nor presence."""
    names = [f.name for f in dataclasses.fields(FaceRecord) if f.name not in ("box_source", "presence")]
    if version == 1:
        names = [n for n in names if not n.startswith("emotion")]
    columns = {}
    for name in names:
        values = [getattr(r, name) for r in records]
        if isinstance(values[0], np.ndarray):
            columns[name] = pa.array([v.tolist() for v in values], pa.list_(pa.float32(), values[0].size))
        else:
            columns[name] = pa.array(values)
    return pa.table(columns).replace_schema_metadata(_V1_METADATA if version == 1 else _V2_METADATA)


def as_read_from_before_box_source(records: list[FaceRecord]) -> list[FaceRecord]:
    """The records as data written before box_source and presence reads back."""
    return [replace(r, box_source=BoxSource.DETECTOR, presence=float("nan")) for r in records]
