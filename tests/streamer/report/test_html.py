"""write_report: PNG plots per stream and track, one index.html that shows them all."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from PIL import Image

import streamer.report.html
from streamer.config import ParquetConfig
from streamer.data.sinks.parquet_sink import ParquetSink, partition_name
from streamer.report.html import ReportError, write_report
from testsupport.legacy_schema import legacy_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(out, stream_id, records):
    sink = ParquetSink(ParquetConfig(out=str(out)), stream_id, {"facestream.face_model_version": "fm-test"})
    sink.write(records)
    sink.close()


def _smooth(records):
    """Give the random factory records readable values: angles in degrees, weights in 0..1."""
    out = []
    for r in records:
        t = r.pts
        pose = np.array([30 * np.sin(t), 10 * np.cos(t), 5 * np.sin(2 * t), 320, 240, 8], np.float32)
        out.append(dataclasses.replace(
            r, pose=pose, pose_raw=pose + r.pose_raw,
            blendshapes=np.abs(np.sin(t + np.arange(53, dtype=np.float32))).astype(np.float32)))
    return out


@pytest.fixture
def dataset(tmp_path, make_records):
    # cam1: 4 tracks of 6 records; 3 fit under the cap (set to 3 below: lowest ids win ties)
    cam1 = _smooth(make_records(6, faces=4, stream_id="cam1", seed=1))
    # lobby/east: two long tracks and one of 3 records (too short to plot)
    lobby = make_records(40, faces=2, stream_id="lobby/east", seed=2)
    short = [dataclasses.replace(r, track_id=7)
             for r in make_records(3, faces=1, stream_id="lobby/east", seed=3)]
    lobby = sorted(_smooth(lobby + short), key=lambda r: (r.frame_index, r.track_id))
    _write(tmp_path, "cam1", cam1)
    _write(tmp_path, "lobby/east", lobby)
    (tmp_path / "summary.json").write_text(json.dumps({
        "frames": 40, "faces": len(cam1) + len(lobby), "tracks": 13, "throughput_fps": 123.5,
        "model_version": "ckpt-test@fm-test", "streams": {"cam1": {"dropped": 0}}}))
    return tmp_path


def test_report_writes_valid_pngs_and_an_index_that_shows_them(dataset, monkeypatch):
    monkeypatch.setattr(streamer.report.html, "MAX_TRACKS_PER_STREAM", 3)   # fewer plots, same rule
    index = write_report(dataset)
    report = dataset / "report"
    assert index == report / "index.html" and index.is_file()

    pngs = sorted(p.relative_to(report).as_posix() for p in report.rglob("*.png"))
    for rel in pngs:
        data = (report / rel).read_bytes()
        assert data[:8] == PNG_MAGIC, rel
        assert len(data) > 5_000, rel                      # a real plot, not an empty canvas
        with Image.open(report / rel) as im:
            im.verify()
        with Image.open(report / rel) as im:
            assert im.size[0] >= 400 and im.size[1] >= 150

    cam1, lobby = partition_name("cam1"), partition_name("lobby/east")
    expected = {f"{cam1}/overview.png", f"{lobby}/overview.png"}
    expected |= {f"{cam1}/track-{t}-{kind}.png" for t in (1, 2, 3)
                 for kind in ("pose", "expression", "emotion")}
    expected |= {f"{lobby}/track-{t}-{kind}.png" for t in (1, 2) for kind in ("pose", "expression", "emotion")}
    assert set(pngs) == expected                           # capped, short track left out

    page = index.read_text()
    assert set(re.findall(r'<img src="([^"]+)"', page)) == expected
    for text in ("123.5", "ckpt-test@fm-test", "yaw &gt; 0", "pitch &gt; 0", "roll &gt; 0",
                 "clockwise", "lobby/east"):
        assert text in page
    assert "http://" not in page and "https://" not in page   # self-contained


def test_without_summary_the_dataset_fills_in_and_a_second_run_replaces_the_report(tmp_path, make_records):
    _write(tmp_path, "cam1", _smooth(make_records(8, faces=1)))
    page = write_report(tmp_path).read_text()
    assert "8 (from the dataset)" in page and "test@fm1-abcdef" in page

    stale = tmp_path / "report" / "stale.png"
    stale.write_bytes(PNG_MAGIC)
    (tmp_path / "summary.json").write_text(json.dumps({"faces": 8, "throughput_fps": 42.0}))
    page = write_report(tmp_path).read_text()
    assert not stale.exists()
    assert "42" in page and "8 (from the dataset)" not in page
    assert (tmp_path / "report" / "cam1" / "track-1-pose.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]


def test_no_dataset_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="no facestream dataset"):
        write_report(tmp_path)
    assert issubclass(ReportError, ValueError)
    ParquetSink(ParquetConfig(out=str(tmp_path)), "cam1").close()     # dataset, no records
    with pytest.raises(ReportError, match="no records"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()


def test_emotion_ribbon_shows_the_labels_colours_in_time_order(tmp_path, make_records):
    """First half happy, second half uncertain: the label strip is happy's colour on the
    left and the abstention grey on the right."""
    from streamer.report.emotion_ribbon import ABSTAIN_COLORS, CLASS_COLORS

    recs = _smooth(make_records(40, faces=1))
    happy = np.array([0.05, 0.0, 0.05, 0.8, 0.1, 0.0, 0.0], np.float32)
    flat = np.full(7, 1 / 7, np.float32)
    recs = [dataclasses.replace(r, emotion="happy" if k < 20 else "uncertain",
                                emotion_probs=happy if k < 20 else flat) for k, r in enumerate(recs)]
    _write(tmp_path, "cam1", recs)
    write_report(tmp_path)
    with Image.open(tmp_path / "report" / "cam1" / "track-1-emotion.png") as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    h, w, _ = rgb.shape
    strip = rgb[int(h * 0.80)]                 # a row through the label strip (axes 0.14..0.26 from the bottom)
    hexrgb = lambda c: np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)])
    left, right = strip[int(w * 0.15)], strip[int(w * 0.70)]
    assert np.abs(left - hexrgb(CLASS_COLORS["happy"])).max() < 10
    assert np.abs(right - hexrgb(ABSTAIN_COLORS["uncertain"])).max() < 10


def test_version_1_data_reports_without_emotion(tmp_path, make_records):
    import pyarrow.parquet as pq

    (tmp_path / "records" / "stream=cam1").mkdir(parents=True)
    pq.write_table(legacy_table(_smooth(make_records(8, faces=1)), version=1),
                   tmp_path / "records" / "stream=cam1" / "part-0.parquet")
    write_report(tmp_path)
    assert (tmp_path / "report" / "cam1" / "track-1-emotion.png").is_file()
    assert (tmp_path / "report" / "cam1" / "track-1-expression.png").is_file()


def test_expression_curves_follow_the_datasets_blendshape_names():
    from streamer.data.record import BLENDSHAPE_NAMES
    from streamer.report.html import _curve_indices

    assert dict(_curve_indices(BLENDSHAPE_NAMES))["jawOpen"] == [26]
    assert dict(_curve_indices(("eyeBlink_R", "jawOpen"))) == {"jawOpen": [1], "eyeBlink (L+R)/2": [0]}


def test_tracks_are_grouped_by_person_with_a_table_of_each_persons_tracks(tmp_path, make_records):
    records = _smooth(make_records(10, faces=3))
    for r in records:   # tracks 1 and 3 show one face, track 2 another
        r.person_id = {1: 1, 2: 2, 3: 1}[r.track_id]
    _write(tmp_path, "cam1", records)
    page = write_report(tmp_path).read_text()
    assert "<tr><td>1</td><td>1, 3</td><td>20</td>" in page and "<tr><td>2</td><td>2</td><td>10</td>" in page
    # each person's heading, then its tracks
    order = re.findall(r"<h3>Person (\d+)</h3>|<h4>Track (\d+)</h4>", page)
    assert [p or f"t{t}" for p, t in order] == ["1", "t1", "t3", "2", "t2"]
    assert re.search(r"Persons</th><td>2 \(from the dataset\)", page)
