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
    assert meta[b"facestream.face_model_hash"] == b"h1" and meta[b"facestream.schema_version"] == b"1"
    assert b"facestream.checkpoint" not in meta       # the streams disagree on it


def test_empty_dataset_reads_as_an_empty_table(tmp_path):
    ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1").close()
    assert read_dataset(tmp_path).num_rows == 0
