"""FaceRecord encodings: Arrow and Redis round trips are exact, the schema is documented."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from streamer.data import schema
from streamer.data.schema import (
    ARROW_SCHEMA,
    SCHEMA_VERSION,
    decode_event,
    decode_redis,
    encode_event,
    encode_redis,
    events_key,
    records_to_table,
    stream_key,
    table_to_records,
)
from testsupport.legacy_schema import as_read_from_before_box_source, legacy_table

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
    named = {"pose": POSE, "pose_raw": POSE, "blendshapes": schema.BLENDSHAPE_NAMES}
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
    assert ARROW_SCHEMA.metadata[b"facestream.schema_version"] == str(SCHEMA_VERSION).encode() == b"4"
    assert ARROW_SCHEMA.metadata[b"facestream.blendshape_names"].split(b",")[26] == b"jawOpen"


def test_blendshape_names_are_the_face_models():
    from workers import face_model

    assert schema.BLENDSHAPE_NAMES == face_model.load().blend_names
    assert len(schema.BLENDSHAPE_NAMES) == schema.N_BLEND == face_model.N_BLEND == 53


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
    with pytest.raises(ValueError):
        encode_redis(rec)


def test_newer_schema_version_is_refused(make_records):
    table = records_to_table(make_records(1))
    newer = table.replace_schema_metadata({b"facestream.schema_version": b"99"})
    with pytest.raises(ValueError, match="upgrade"):
        table_to_records(newer)


def test_redis_round_trip_is_exact(make_records, assert_records_equal):
    records = make_records(5, faces=2)
    encoded = [encode_redis(r) for r in records]
    assert all(isinstance(v, bytes) for e in encoded for v in e.values())
    assert len(encoded[0]["x"]) == 4 * sum(VECTOR_DIMS.values())
    assert_records_equal([decode_redis(e) for e in encoded], records)
    # as redis-py returns them: bytes keys
    as_bytes = [{k.encode(): v for k, v in e.items()} for e in encoded]
    assert_records_equal([decode_redis(e) for e in as_bytes], records)


def test_redis_packed_layout_is_little_endian_float32_in_field_order(make_records):
    rec = make_records(1, faces=1)[0]
    x = np.frombuffer(encode_redis(rec)["x"], dtype="<f4")
    assert np.array_equal(x[:4], rec.box)
    assert np.array_equal(x[4:33], rec.expression)
    assert np.array_equal(x[-14 - 99:-14], rec.shape_raw)
    assert np.array_equal(x[-14:-7], rec.emotion_probs) and np.array_equal(x[-7:], rec.emotion_probs_raw)
    assert [name for name, _ in schema.VECTOR_FIELDS] == list(VECTOR_DIMS)


def test_events_round_trip():
    fields = encode_event("progress", "cam1", frames=120, fps=29.5, source={"url": "x.mp4"})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    event = decode_event({k.encode(): v.encode() for k, v in fields.items()})
    assert event["kind"] == "progress" and event["stream_id"] == "cam1"
    assert event["frames"] == 120 and event["fps"] == 29.5 and event["source"] == {"url": "x.mp4"}
    assert isinstance(event["time"], float)
    with pytest.raises(ValueError, match="unknown event kind"):
        encode_event("exploded", "cam1")


def test_key_names():
    assert stream_key("fs", "cam1") == "fs:stream:cam1"
    assert events_key("fs") == "fs:events"


def test_emotion_classes_are_in_the_metadata_and_read_from_it(make_records):
    from streamer.data.schema import EMOTION_CLASSES, emotion_classes, records_to_table

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
    up = schema.upgrade_table(v2.append_column("stream", pa.array(["cam1"] * 6)))
    assert up.schema.equals(ARROW_SCHEMA)      # the Hive partition column is dropped
    assert up.column("pose_raw").combine_chunks().field("yaw").to_pylist() == [float(r.pose_raw[0]) for r in recs]
    assert up.column("blendshapes")[5]["noseSneer_R"].as_py() == float(recs[5].blendshapes[52])
    meta = up.schema.metadata
    assert meta[b"facestream.schema_version"] == b"4" and meta[b"facestream.upgraded_from"] == b"2"
    assert schema.blendshape_names(meta) == schema.BLENDSHAPE_NAMES
    assert_records_equal(table_to_records(v2), as_read_from_before_box_source(recs))
    # a current table passes unchanged
    current = records_to_table(recs)
    assert schema.upgrade_table(current).equals(current, check_metadata=True)


def test_table_without_a_column_of_every_version_is_refused(make_records):
    with pytest.raises(ValueError, match="lacks facestream columns: pose"):
        table_to_records(legacy_table(make_records(1)).drop_columns(["pose"]))


def test_blendshape_names_read_from_the_metadata(make_records):
    meta = records_to_table(make_records(1)).schema.metadata
    assert schema.blendshape_names(meta) == schema.BLENDSHAPE_NAMES
    assert schema.blendshape_names({"facestream.blendshape_names": "a,b"}) == ("a", "b")
    assert schema.blendshape_names({}) == schema.BLENDSHAPE_NAMES


def test_stream_info_names_every_number_a_redis_reader_gets():
    info = schema.stream_info()
    assert info["pose_fields"] == list(POSE) and info["blendshape_names"][26] == "jawOpen"
    assert info["emotion_classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_key_prefix_inverts_stream_key():
    assert schema.key_prefix(stream_key("a:b", "cam:1"), "cam:1") == "a:b"
    with pytest.raises(ValueError, match="not the Redis key of stream 'cam2'"):
        schema.key_prefix("fs:stream:cam1", "cam2")


def test_version_2_redis_entry_decodes_as_version_4(make_records, assert_records_equal):
    rec = make_records(1)[0]
    fields = encode_redis(rec)
    assert fields["v"] == b"4"
    assert_records_equal([decode_redis({**fields, "v": b"2"})], [rec])


def test_version_1_redis_entry_decodes_with_no_emotion(make_records):
    import numpy as np

    rec = make_records(1)[0]
    fields = encode_redis(rec)
    v1 = {k: v for k, v in fields.items() if k not in ("e", "er")}
    v1["v"], v1["x"] = b"1", fields["x"][: -2 * 7 * 4]
    got = decode_redis(v1)
    assert got.emotion == "" and np.isnan(got.emotion_probs).all()
    assert np.array_equal(got.expression, rec.expression) and np.array_equal(got.shape_raw, rec.shape_raw)
    assert decode_redis(fields).emotion == rec.emotion
    with pytest.raises(ValueError, match="expected"):
        decode_redis({**fields, "v": b"1"})


def test_box_source_and_presence_round_trip_and_read_as_detector_and_nan_where_missing(
        make_records, assert_records_equal):
    recs = make_records(4)
    assert {r.box_source for r in recs} == {"detector", "tracking"}
    got = table_to_records(records_to_table(recs))
    assert [(g.box_source, g.presence) for g in got] == [(r.box_source, r.presence) for r in recs]
    assert [(d.box_source, d.presence) for d in map(decode_redis, map(encode_redis, recs))] == \
        [(r.box_source, r.presence) for r in recs]
    # a version-3 table or Redis entry written before the two fields existed
    older = records_to_table(recs).drop_columns(["box_source", "presence"])
    assert_records_equal(table_to_records(older), as_read_from_before_box_source(recs))
    entry = {k: v for k, v in encode_redis(recs[0]).items() if k not in ("bs", "p")}
    assert_records_equal([decode_redis(entry)], as_read_from_before_box_source(recs[:1]))
    # unknown presence is NaN in both encodings
    recs[0].presence = float("nan")
    assert np.isnan(decode_redis(encode_redis(recs[0])).presence)
    assert np.isnan(table_to_records(records_to_table(recs[:1]))[0].presence)


def test_person_id_round_trips_and_older_data_reads_null(make_records):
    records = make_records(4, faces=2)
    for k, rec in enumerate(records):
        rec.person_id = None if k == 0 else 7 + k % 2
    table = records_to_table(records)
    assert table.column("person_id").to_pylist() == [r.person_id for r in records]
    assert [r.person_id for r in table_to_records(table)] == [r.person_id for r in records]
    assert [decode_redis(encode_redis(r)).person_id for r in records] == [r.person_id for r in records]
    assert "pid" not in encode_redis(records[0])
    # a version-3 file had no person_id column: it reads as null, the version upgraded
    v3 = table.drop_columns(["person_id"]).replace_schema_metadata(
        {**table.schema.metadata, b"facestream.schema_version": b"3"})
    upgraded = schema.upgrade_table(v3)
    assert upgraded.column("person_id").null_count == len(records)
    assert upgraded.schema.metadata[b"facestream.upgraded_from"] == b"3"
