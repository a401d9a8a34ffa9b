"""ParquetSink: exact rows, rolling parts, atomic files, readable by the usual readers."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from streamer.config import ParquetConfig
from streamer.data.dataset import read_dataset, read_records
from streamer.data.events import EventKind
from streamer.data.sinks import ParquetSink, SinkError
from streamer.data.sinks.parquet_sink import partition_name

REPO = Path(__file__).resolve().parents[4]
META = {"facestream.face_model_version": "fm-1", "facestream.checkpoint": "ckpt-a"}


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_rows_roll_into_parts_and_read_back_exactly(tmp_path, make_records, assert_records_equal):
    records = make_records(125, faces=2)
    sink = ParquetSink(ParquetConfig(out=str(tmp_path), rows_per_file=100), "cam1", META)
    for i in range(0, len(records), 7):
        sink.write(records[i:i + 7])
    assert sink.stats.files == 2 and sink.stats.buffered == 50 and sink.stats.published == 200
    sink.close()
    assert _files(tmp_path) == [
        "records/stream=cam1/part-00000.parquet",
        "records/stream=cam1/part-00001.parquet",
        "records/stream=cam1/part-00002.parquet",
    ]
    assert [pq.read_metadata(tmp_path / f).num_rows for f in _files(tmp_path)] == [100, 100, 50]
    assert sink.stats.published == 250
    assert sink.stats.to_json() == {"rows_written": 250, "files": 3, "skipped": 0, "buffered": 0,
                                    "last_file": str(tmp_path / "records/stream=cam1/part-00002.parquet")}
    assert list(sink.stats.to_json()) == ["rows_written", "files", "last_file", "skipped", "buffered"]
    assert_records_equal(read_records(tmp_path, "cam1"), records)


def test_files_carry_schema_metadata_and_zstd(tmp_path, make_records):
    with_sink = ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1", META)
    with_sink.write(make_records(3))
    with_sink.close()
    path = next((tmp_path / "records").rglob("*.parquet"))
    meta = pq.read_schema(path).metadata
    assert meta[b"facestream.schema_version"] == b"4"
    assert meta[b"facestream.blendshape_names"].startswith(b"browDown_L,browDown_R,browInnerUp_L,")
    assert meta[b"facestream.emotion_classes"] == b"angry,disgust,fear,happy,neutral,sad,surprise"
    assert meta[b"facestream.face_model_version"] == b"fm-1"
    assert meta[b"facestream.checkpoint"] == b"ckpt-a"
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert read_dataset(tmp_path).schema.metadata[b"facestream.checkpoint"] == b"ckpt-a"


def test_the_metadata_is_what_the_sink_was_made_with_whatever_the_events_say(tmp_path, make_records):
    sink = ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1", {**META, "facestream.reading": "one_view"})
    sink.event(EventKind.PROGRESS, frames=0)
    sink.event(EventKind.STARTED, reading="mirror_average", fps=30.0)   # events are not stored
    sink.write(make_records(3))
    sink.close()
    meta = read_dataset(tmp_path).schema.metadata
    assert meta[b"facestream.reading"] == b"one_view" and meta[b"facestream.checkpoint"] == b"ckpt-a"


def test_several_streams_read_as_one_dataset_by_pandas_and_pyarrow(tmp_path, make_records):
    cfg = ParquetConfig(out=str(tmp_path), rows_per_file=40)
    for stream, seed in (("cam1", 1), ("rtsp://host/live?x=1", 2)):
        sink = ParquetSink(cfg, stream, META)
        sink.write(make_records(50, faces=1, stream_id=stream, seed=seed))
        sink.close()
    frame = pd.read_parquet(tmp_path / "records")
    assert len(frame) == 100
    assert set(frame["stream_id"]) == {"cam1", "rtsp://host/live?x=1"}
    assert len(frame["expression"].iloc[0]) == 29
    assert set(frame["pose"].iloc[0]) == {"yaw", "pitch", "roll", "tx", "ty", "scale"}
    hive = ds.dataset(tmp_path / "records", format="parquet", partitioning="hive").to_table()
    assert hive.num_rows == 100 and "stream" in hive.column_names
    table = read_dataset(tmp_path)
    assert table.num_rows == 100 and table.column_names[0] == "stream_id"
    assert [r.frame_index for r in read_records(tmp_path, "rtsp://host/live?x=1")] == list(range(50))


def test_an_analyst_reads_pose_and_blendshapes_by_name(tmp_path, make_records):
    """DuckDB SQL, polars and pandas on the files as ParquetSink writes them."""
    import duckdb
    import polars as pl

    records = make_records(30, faces=2)
    sink = ParquetSink(ParquetConfig(out=str(tmp_path), rows_per_file=25), "cam1", META)
    sink.write(records)
    sink.close()
    want = [(r.frame_index, r.track_id, float(r.pose[0]), float(r.blendshapes[26]), float(r.pose_raw[5]))
            for r in records]
    glob = str(tmp_path / "records" / "*" / "*.parquet")

    rows = duckdb.sql(
        "select frame_index, track_id, pose.yaw, blendshapes.jawOpen, pose_raw.scale "
        f"from read_parquet('{glob}', hive_partitioning = true) where stream = 'cam1' "
        "order by frame_index, track_id").fetchall()
    assert rows == want
    [(turned,)] = duckdb.sql(f"select count(*) from '{glob}' where abs(pose.yaw) > 1").fetchall()
    assert turned == sum(abs(r.pose[0]) > 1 for r in records)

    frame = pl.read_parquet(glob).sort("frame_index", "track_id")
    got = frame.select(pl.col("frame_index"), pl.col("track_id"), pl.col("pose").struct.field("yaw"),
                       pl.col("blendshapes").struct.field("jawOpen"), pl.col("pose_raw").struct.field("scale"))
    assert got.rows() == want
    assert frame.schema["blendshapes"].fields[52].name == "noseSneer_R"

    pandas = pd.read_parquet(tmp_path / "records", dtype_backend="pyarrow").sort_values(["frame_index", "track_id"])
    assert pandas["pose"].struct.field("yaw").tolist() == [w[2] for w in want]
    assert list(pandas["blendshapes"].struct.explode().columns[:2]) == ["browDown_L", "browDown_R"]


def test_an_analyst_groups_by_person_with_no_decoding(tmp_path, make_records):
    """DuckDB, polars and pandas count each person's tracks and faces from the files."""
    import duckdb
    import polars as pl

    records = make_records(10, faces=3)
    for r in records:   # tracks 1 and 3 are one face, track 2 another; one record without a person
        r.person_id = {1: 1, 2: 2, 3: 1}[r.track_id]
    records[-1].person_id = None
    sink = ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1", META)
    sink.write(records)
    sink.close()
    glob = str(tmp_path / "records" / "*" / "*.parquet")
    assert records[-1].track_id == 3
    want = [(1, 2, 19), (2, 1, 10), (None, 1, 1)]   # (person, its tracks, its faces)
    rows = duckdb.sql("select person_id, count(distinct track_id), count(*) from read_parquet('" + glob + "') "
                      "group by person_id order by person_id nulls last").fetchall()
    assert rows == want
    got = (pl.read_parquet(glob).group_by("person_id")
           .agg(pl.col("track_id").n_unique(), pl.len()).sort("person_id", nulls_last=True))
    assert got.rows() == want
    pandas = (pd.read_parquet(tmp_path / "records").groupby("person_id", dropna=False)["track_id"]
              .agg(["nunique", "size"]))
    assert [(None if pd.isna(k) else int(k), int(a), int(b)) for k, (a, b) in pandas.iterrows()] == want


def test_partition_names_are_path_safe_and_distinct():
    assert partition_name("cam1") == "cam1"
    odd = [partition_name(s) for s in ("a/b", "a_b", "../x", "a b")]
    assert all("/" not in p and not p.startswith(".") and " " not in p for p in odd)
    assert len(set(odd)) == 4


def test_a_second_sink_for_the_same_stream_appends(tmp_path, make_records):
    cfg = ParquetConfig(out=str(tmp_path))
    for start in (0, 10):
        sink = ParquetSink(cfg, "cam1", META)
        sink.write([r for r in make_records(20, faces=1) if start <= r.frame_index < start + 10])
        sink.close()
    assert len(_files(tmp_path)) == 2
    assert [r.frame_index for r in read_records(tmp_path)] == list(range(20))


def test_write_after_close_is_an_error(tmp_path, make_records):
    sink = ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1", META)
    sink.close()
    with pytest.raises(SinkError):
        sink.write(make_records(1))


CRASH = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from conftest import _record
    from streamer.config import ParquetConfig
    from streamer.data.sinks import ParquetSink
    rng = np.random.default_rng(0)
    records = [_record(rng, "cam1", f, 1) for f in range({n})]
    sink = ParquetSink(ParquetConfig(out={out!r}, rows_per_file=100), "cam1", {{}})
    sink.write(records)
    if {mid_rename}:
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)   # die before the rename
        sink.flush()
    os._exit(0)                                                         # die without close()
""")


def _crash(out: Path, n: int, mid_rename: bool) -> None:
    code = CRASH.format(tests=str(REPO / "tests"), n=n, out=str(out), mid_rename=mid_rename)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60, check=False)


def test_crash_without_close_leaves_only_complete_parts(tmp_path):
    _crash(tmp_path, 250, mid_rename=False)
    assert _files(tmp_path) == ["records/stream=cam1/part-00000.parquet", "records/stream=cam1/part-00001.parquet"]
    assert read_dataset(tmp_path).num_rows == 200


def test_crash_mid_write_leaves_only_a_hidden_temp_file(tmp_path):
    _crash(tmp_path, 250, mid_rename=True)
    assert _files(tmp_path) == [
        "records/stream=cam1/.part-00002.parquet.tmp",
        "records/stream=cam1/part-00000.parquet",
        "records/stream=cam1/part-00001.parquet",
    ]
    assert read_dataset(tmp_path).num_rows == 200
    assert len(pd.read_parquet(tmp_path / "records")) == 200
    # a later sink for the stream continues after the complete parts
    sink = ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1", {})
    assert (sink.stats.files, sink.stats.published) == (0, 0)
    sink.close()


def test_no_temp_files_after_close(tmp_path, make_records):
    sink = ParquetSink(ParquetConfig(out=str(tmp_path), rows_per_file=10), "cam1", META)
    sink.write(make_records(33, faces=1))
    sink.flush()
    sink.write(make_records(5, faces=1, seed=3))
    sink.close()
    assert not [f for f in _files(tmp_path) if Path(f).name.startswith(".")]
    assert read_dataset(tmp_path).num_rows == 38


def test_read_dataset_without_records_dir_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="records"):
        read_dataset(tmp_path)


def test_a_stream_that_writes_no_row_leaves_no_partition_folder(tmp_path, make_records):
    """A failed stream (or one that saw no face) leaves the dataset as it was; the first
    row makes the folder."""
    sink = ParquetSink(ParquetConfig(out=str(tmp_path)), "failed-cam", META)
    sink.event(EventKind.FAILED, error="SourceRejected: rtsp://cam/x answered 404 Not Found")
    sink.write([])
    sink.flush()
    sink.close()
    assert (tmp_path / "records").is_dir() and list((tmp_path / "records").iterdir()) == []
    assert read_records(tmp_path) == []
    sink = ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1", META)
    assert not (tmp_path / "records" / "stream=cam1").exists()
    sink.write(make_records(3, stream_id="cam1"))
    sink.close()
    assert _files(tmp_path) == ["records/stream=cam1/part-00000.parquet"]
