"""FaceRecords as Arrow tables: the round trip is exact, the schema is documented, older
files are upgraded on read."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from streamer.data.arrow import (
    ARROW_SCHEMA,
    blendshape_names,
    emotion_classes,
    records_to_table,
    table_to_records,
    upgrade_table,
)
from streamer.data.record import BLENDSHAPE_NAMES, BoxSource
from testsupport.legacy_schema import as_read_from_before_box_source, legacy_table
from workers.emotion_labels import EMOTION_CLASSES

VECTOR_DIMS = {
    "box": 4, "expression": 29, "pose": 6, "quaternion": 4, "shape": 99, "blendshapes": 53,
    "expression_raw": 29, "pose_raw": 6, "quaternion_raw": 4, "shape_raw": 99, "emotion_probs": 7,
    "emotion_probs_raw": 7,
}
POSE = ("yaw", "pitch", "roll", "tx", "ty", "scale")


def test_arrow_schema_columns_types_and_metadata():
    assert ARROW_SCHEMA.names == [
        "stream_id", "frame_index", "pts", "wall_time", "track_id", "box", "score",
        "expression", "pose", "quaternion", "shape", "blendshapes", "expression_raw",
        "pose_raw", "quaternion_raw", "shape_raw", "model_version",
        "emotion", "emotion_probs", "emotion_raw", "emotion_probs_raw", "box_source", "presence",
        "person_id",
    ]
    named = {"pose": POSE, "pose_raw": POSE, "blendshapes": BLENDSHAPE_NAMES}
    for name, dim in VECTOR_DIMS.items():
        if name in named:
            assert ARROW_SCHEMA.field(name).type == pa.struct([pa.field(n, pa.float32(), False) for n in named[name]])
        else:
            assert ARROW_SCHEMA.field(name).type == pa.list_(pa.float32(), dim)
    assert ARROW_SCHEMA.field("pts").type == pa.float64()
    assert ARROW_SCHEMA.field("wall_time").type == pa.float64()
    assert ARROW_SCHEMA.field("frame_index").type == pa.int64()
    assert ARROW_SCHEMA.field("stream_id").type == pa.string()
    assert ARROW_SCHEMA.field("box_source").type == pa.string()
    assert ARROW_SCHEMA.field("presence").type == pa.float32()
    assert ARROW_SCHEMA.field("person_id").type == pa.int64() and ARROW_SCHEMA.field("person_id").nullable
    assert ARROW_SCHEMA.metadata[b"facestream.schema_version"] == b"4"
    assert ARROW_SCHEMA.metadata[b"facestream.blendshape_names"].split(b",")[26] == b"jawOpen"


def test_arrow_round_trip_is_exact(make_records, assert_records_equal):
    records = make_records(50, faces=3)
    table = records_to_table(records, {"facestream.face_model_hash": "abc123"})
    assert table.num_rows == 150
    assert table.schema.metadata[b"facestream.face_model_hash"] == b"abc123"
    assert table.schema.metadata[b"facestream.schema_version"] == b"4"
    assert_records_equal(table_to_records(table), records)
    # pose and blendshapes by name, in the record's order
    assert table.column("pose").combine_chunks().field("roll").to_pylist()[4] == float(records[4].pose[2])
    assert table.column("blendshapes")[3]["jawOpen"].as_py() == float(records[3].blendshapes[26])
    # chunked and sliced tables decode the same
    sliced = pa.concat_tables([table.slice(0, 7), table.slice(7)]).slice(5, 20)
    assert_records_equal(table_to_records(sliced), records[5:25])


def test_arrow_accepts_float64_inputs_and_empty_lists(make_records):
    rec = make_records(1, faces=1)[0]
    rec.expression = rec.expression.astype(np.float64)
    table = records_to_table([rec])
    assert table_to_records(table)[0].expression.dtype == np.float32
    empty = records_to_table([])
    assert empty.num_rows == 0 and empty.schema.equals(ARROW_SCHEMA)
    assert table_to_records(empty) == []


def test_wrong_vector_length_is_an_error(make_records):
    rec = make_records(1, faces=1)[0]
    rec.expression = np.zeros(28, np.float32)
    with pytest.raises(ValueError, match="expression"):
        records_to_table([rec])


def test_newer_schema_version_is_refused(make_records):
    table = records_to_table(make_records(1))
    newer = table.replace_schema_metadata({b"facestream.schema_version": b"99"})
    with pytest.raises(ValueError, match="upgrade"):
        table_to_records(newer)


def test_emotion_classes_are_in_the_metadata_and_read_from_it(make_records):
    meta = records_to_table(make_records(1)).schema.metadata
    assert meta[b"facestream.emotion_classes"] == b"angry,disgust,fear,happy,neutral,sad,surprise"
    assert emotion_classes(meta) == EMOTION_CLASSES
    assert emotion_classes({"facestream.emotion_classes": "b,a"}) == ("b", "a")
    assert emotion_classes({}) == EMOTION_CLASSES


def test_version_1_table_reads_with_no_emotion(make_records):
    recs = make_records(2)
    got = table_to_records(legacy_table(recs, version=1))
    assert [g.emotion for g in got] == [""] * len(recs) and all(np.isnan(g.emotion_probs_raw).all() for g in got)
    assert all(np.array_equal(g.shape_raw, r.shape_raw) for g, r in zip(got, recs))
    assert all(np.array_equal(g.pose, r.pose) and np.array_equal(g.blendshapes, r.blendshapes)
               for g, r in zip(got, recs))


def test_version_2_table_upgrades_to_named_structs(make_records, assert_records_equal):
    recs = make_records(3)
    v2 = legacy_table(recs, version=2)
    assert v2.schema.field("pose").type == pa.list_(pa.float32(), 6)
    up = upgrade_table(v2.append_column("stream", pa.array(["cam1"] * 6)))
    assert up.schema.equals(ARROW_SCHEMA)      # the Hive partition column is dropped
    assert up.column("pose_raw").combine_chunks().field("yaw").to_pylist() == [float(r.pose_raw[0]) for r in recs]
    assert up.column("blendshapes")[5]["noseSneer_R"].as_py() == float(recs[5].blendshapes[52])
    meta = up.schema.metadata
    assert meta[b"facestream.schema_version"] == b"4" and meta[b"facestream.upgraded_from"] == b"2"
    assert blendshape_names(meta) == BLENDSHAPE_NAMES
    assert_records_equal(table_to_records(v2), as_read_from_before_box_source(recs))
    # a current table passes unchanged
    current = records_to_table(recs)
    assert upgrade_table(current).equals(current, check_metadata=True)


def test_table_without_a_column_of_every_version_is_refused(make_records):
    with pytest.raises(ValueError, match="lacks facestream columns: pose"):
        table_to_records(legacy_table(make_records(1)).drop_columns(["pose"]))


def test_blendshape_names_read_from_the_metadata(make_records):
    meta = records_to_table(make_records(1)).schema.metadata
    assert blendshape_names(meta) == BLENDSHAPE_NAMES
    assert blendshape_names({"facestream.blendshape_names": "a,b"}) == ("a", "b")
    assert blendshape_names({}) == BLENDSHAPE_NAMES


def test_box_source_and_presence_round_trip_and_read_as_detector_and_nan_where_missing(
        make_records, assert_records_equal):
    recs = make_records(4)
    assert {r.box_source for r in recs} == {BoxSource.DETECTOR, BoxSource.TRACKING}
    table = records_to_table(recs)
    assert table.column("box_source").to_pylist() == [r.box_source.value for r in recs]   # plain text
    got = table_to_records(table)
    assert [(g.box_source, g.presence) for g in got] == [(r.box_source, r.presence) for r in recs]
    assert all(type(g.box_source) is BoxSource for g in got)
    # a version-3 table written before the two fields existed
    older = table.drop_columns(["box_source", "presence"])
    assert_records_equal(table_to_records(older), as_read_from_before_box_source(recs))
    # unknown presence is NaN
    recs[0].presence = float("nan")
    assert np.isnan(table_to_records(records_to_table(recs[:1]))[0].presence)


def test_person_id_round_trips_and_older_data_reads_null(make_records):
    records = make_records(4, faces=2)
    for k, rec in enumerate(records):
        rec.person_id = None if k == 0 else 7 + k % 2
    table = records_to_table(records)
    assert table.column("person_id").to_pylist() == [r.person_id for r in records]
    assert [r.person_id for r in table_to_records(table)] == [r.person_id for r in records]
    # a version-3 file had no person_id column: it reads as null, the version upgraded
    v3 = table.drop_columns(["person_id"]).replace_schema_metadata(
        {**table.schema.metadata, b"facestream.schema_version": b"3"})
    upgraded = upgrade_table(v3)
    assert upgraded.column("person_id").null_count == len(records)
    assert upgraded.schema.metadata[b"facestream.upgraded_from"] == b"3"
