"""FaceRecord's own shape: the constants both encodings follow, and BoxSource."""
from __future__ import annotations

import dataclasses

from streamer.data.record import (
    BLENDSHAPE_NAMES,
    COLUMNS,
    N_BLEND,
    NAMED_VECTORS,
    POSE_FIELDS,
    VECTOR_DIMS,
    VECTOR_FIELDS,
    BoxSource,
    FaceRecord,
)


def test_blendshape_names_are_the_face_models():
    from workers import face_model

    assert BLENDSHAPE_NAMES == face_model.load().blend_names
    assert len(BLENDSHAPE_NAMES) == N_BLEND == face_model.N_BLEND == 53


def test_vectors_and_columns_follow_the_record():
    assert COLUMNS == tuple(f.name for f in dataclasses.fields(FaceRecord))
    assert [name for name, _ in VECTOR_FIELDS] == [c for c in COLUMNS if c in VECTOR_DIMS]
    assert VECTOR_DIMS["pose"] == len(POSE_FIELDS) == 6 and VECTOR_DIMS["emotion_probs"] == 7
    assert {name: len(names) for name, names in NAMED_VECTORS.items()} == {"pose": 6, "pose_raw": 6,
                                                                           "blendshapes": 53}


def test_box_source_is_the_text_the_data_holds():
    assert [b.value for b in BoxSource] == ["detector", "tracking"]
    assert BoxSource("tracking") is BoxSource.TRACKING and BoxSource.DETECTOR == "detector"
    assert f"{BoxSource.TRACKING}" == "tracking" and BoxSource.TRACKING.encode() == b"tracking"
    assert FaceRecord.__dataclass_fields__["box_source"].default is BoxSource.DETECTOR
