"""read_dataset / read_records over several streams written by ParquetSink."""
from __future__ import annotations

from streamer.config import ParquetConfig
from streamer.data.dataset import read_dataset, read_records
from streamer.data.sinks import ParquetSink
from testsupport.legacy_schema import as_read_from_before_box_source, legacy_table


def _write(out, stream_id, records, checkpoint):
    sink = ParquetSink(ParquetConfig(out=str(out), rows_per_file=7), stream_id,
                       {"facestream.face_model_hash": "h1", "facestream.checkpoint": checkpoint})
    sink.write(records)
    sink.close()


def test_streams_come_back_sorted_with_the_metadata_they_share(tmp_path, make_records, assert_records_equal):
    b = make_records(10, faces=2, stream_id="b", seed=1)
    a = make_records(10, faces=2, stream_id="a", seed=2)
    _write(tmp_path, "b", b, "ckpt-1")
    _write(tmp_path, "a", a, "ckpt-2")
    assert_records_equal(read_records(tmp_path), a + b)
    assert_records_equal(read_records(tmp_path, "b"), b)
    assert read_records(tmp_path, "nope") == []
    meta = read_dataset(tmp_path).schema.metadata
    assert meta[b"facestream.face_model_hash"] == b"h1" and meta[b"facestream.schema_version"] == b"4"
    assert b"facestream.checkpoint" not in meta       # the streams disagree on it


def test_empty_dataset_reads_as_an_empty_table(tmp_path):
    ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1").close()
    assert read_dataset(tmp_path).num_rows == 0


def test_version_1_and_2_parts_read_beside_version_3_parts(tmp_path, make_records,
                                                        assert_records_equal):
    """A stream written before emotion existed, then by version 2 (pose and blendshapes
    as bare lists), then more after the upgrade to named structs."""
    import numpy as np
    import pyarrow.parquet as pq

    v1, v2, v3 = (make_records(4, stream_id="cam", seed=s) for s in (3, 4, 5))
    for offset, records in ((10, v2), (20, v3)):
        for r in records:
            r.frame_index += offset
    part = tmp_path / "records" / "stream=cam"
    part.mkdir(parents=True)
    pq.write_table(legacy_table(v1, version=1), part / "part-00000.parquet")
    pq.write_table(legacy_table(v2, version=2), part / "part-00001.parquet", compression="zstd")
    _write(tmp_path, "cam", v3, "c")
    got = read_records(tmp_path, "cam")
    assert [g.frame_index for g in got] == [r.frame_index for r in v1 + v2 + v3]
    assert_records_equal(got[len(v1):], as_read_from_before_box_source(v2) + v3)
    for g, w in zip(got[:len(v1)], v1):
        assert (g.emotion, g.emotion_raw) == ("", "") and np.isnan(g.emotion_probs).all()
        assert np.array_equal(g.pose, w.pose) and np.array_equal(g.blendshapes, w.blendshapes)
    table = read_dataset(tmp_path)
    yaw = table.column("pose").combine_chunks().field("yaw").to_pylist()
    assert yaw == [float(r.pose[0]) for r in v1 + v2 + v3]
    # the parts disagree on the version they were written in, not on the layout read
    assert table.schema.metadata[b"facestream.schema_version"] == b"4"
    assert b"facestream.upgraded_from" not in table.schema.metadata
