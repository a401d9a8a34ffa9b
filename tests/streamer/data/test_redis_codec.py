"""FaceRecords as Redis stream entries: the round trip is exact, older entries read, the
key names invert."""
from __future__ import annotations

import numpy as np
import pytest

from streamer.data.record import VECTOR_FIELDS, BoxSource
from streamer.data.redis_codec import decode_redis, encode_redis, events_key, key_prefix, stream_info, stream_key
from testsupport.legacy_schema import as_read_from_before_box_source

VECTOR_DIMS = {
    "box": 4, "expression": 29, "pose": 6, "quaternion": 4, "shape": 99, "blendshapes": 53,
    "expression_raw": 29, "pose_raw": 6, "quaternion_raw": 4, "shape_raw": 99, "emotion_probs": 7,
    "emotion_probs_raw": 7,
}
POSE = ("yaw", "pitch", "roll", "tx", "ty", "scale")


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
    assert [name for name, _ in VECTOR_FIELDS] == list(VECTOR_DIMS)


def test_wrong_vector_length_is_an_error(make_records):
    rec = make_records(1, faces=1)[0]
    rec.expression = np.zeros(28, np.float32)
    with pytest.raises(ValueError, match="hold 346 values, expected 347"):
        encode_redis(rec)


def test_newer_entry_is_refused(make_records):
    with pytest.raises(ValueError, match="upgrade"):
        decode_redis({**encode_redis(make_records(1)[0]), "v": b"5"})


def test_key_names():
    assert stream_key("fs", "cam1") == "fs:stream:cam1"
    assert events_key("fs") == "fs:events"


def test_key_prefix_inverts_stream_key():
    assert key_prefix(stream_key("a:b", "cam:1"), "cam:1") == "a:b"
    with pytest.raises(ValueError, match="not the Redis key of stream 'cam2'"):
        key_prefix("fs:stream:cam1", "cam2")


def test_stream_info_names_every_number_a_redis_reader_gets():
    info = stream_info()
    assert info["pose_fields"] == list(POSE) and info["blendshape_names"][26] == "jawOpen"
    assert info["emotion_classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def test_version_2_redis_entry_decodes_as_version_4(make_records, assert_records_equal):
    rec = make_records(1)[0]
    fields = encode_redis(rec)
    assert fields["v"] == b"4"
    assert_records_equal([decode_redis({**fields, "v": b"2"})], [rec])


def test_version_1_redis_entry_decodes_with_no_emotion(make_records):
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
    assert [encode_redis(r)["bs"] for r in recs] == [r.box_source.value.encode() for r in recs]   # plain text
    got = [decode_redis(encode_redis(r)) for r in recs]
    assert [(d.box_source, d.presence) for d in got] == [(r.box_source, r.presence) for r in recs]
    assert all(type(d.box_source) is BoxSource for d in got)
    # an entry written before the two fields existed
    entry = {k: v for k, v in encode_redis(recs[0]).items() if k not in ("bs", "p")}
    assert_records_equal([decode_redis(entry)], as_read_from_before_box_source(recs[:1]))
    # unknown presence is NaN
    recs[0].presence = float("nan")
    assert np.isnan(decode_redis(encode_redis(recs[0])).presence)


def test_person_id_round_trips_and_is_absent_where_there_is_none(make_records):
    records = make_records(4, faces=2)
    for k, rec in enumerate(records):
        rec.person_id = None if k == 0 else 7 + k % 2
    assert [decode_redis(encode_redis(r)).person_id for r in records] == [r.person_id for r in records]
    assert "pid" not in encode_redis(records[0]) and encode_redis(records[1])["pid"] == b"8"
