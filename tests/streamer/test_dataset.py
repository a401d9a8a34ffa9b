"""read_dataset / read_records over several streams written by ParquetSink."""
from __future__ import annotations

from streamer.config import ParquetConfig
from streamer.dataset import read_dataset, read_records
from streamer.sinks import ParquetSink


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
    assert meta[b"facestream.face_model_hash"] == b"h1" and meta[b"facestream.schema_version"] == b"2"
    assert b"facestream.checkpoint" not in meta       # the streams disagree on it


def test_empty_dataset_reads_as_an_empty_table(tmp_path):
    ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1").close()
    assert read_dataset(tmp_path).num_rows == 0


def test_version_1_parts_read_beside_version_2_parts(tmp_path, make_records, assert_records_equal):
    """A stream written before emotion existed, then more written after an upgrade."""
    import dataclasses

    import numpy as np
    import pyarrow.parquet as pq

    from streamer.schema import SINCE_V2, records_to_table

    old, new = make_records(4, stream_id="cam", seed=3), make_records(3, stream_id="cam", seed=4)
    for r in new:
        r.frame_index += 10
    v1 = records_to_table(old).drop_columns(list(SINCE_V2))
    v1 = v1.replace_schema_metadata({**v1.schema.metadata, b"facestream.schema_version": b"1"})
    (tmp_path / "records" / "stream=cam").mkdir(parents=True)
    pq.write_table(v1, tmp_path / "records" / "stream=cam" / "part-old.parquet")
    _write(tmp_path, "cam", new, "c")
    got = read_records(tmp_path, "cam")
    assert_records_equal(got[len(old):], new)
    blank = [dataclasses.replace(r, emotion="", emotion_raw="", emotion_probs=np.full(7, np.nan, np.float32),
                                 emotion_probs_raw=np.full(7, np.nan, np.float32)) for r in old]
    for g, w in zip(got[:len(old)], blank):
        assert (g.emotion, g.emotion_raw) == ("", "") and np.isnan(g.emotion_probs).all()
        assert np.array_equal(g.expression, w.expression) and g.frame_index == w.frame_index
