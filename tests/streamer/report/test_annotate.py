"""annotate_video: boxes, ids and pose axes drawn on the right frames, re-encoded as H.264."""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import numpy as np
import pytest

import streamer.report.annotate
from streamer.config import Config, SourceConfig
from streamer.report.annotate import annotate_video, axis_endpoints
from streamer.sources.files import open_source
from workers.pose import matrix_from_euler, quaternion_from_matrix

W, H, N_FRAMES, FPS = 160, 120, 20, 10
BOX = (40.0, 30.0, 110.0, 90.0)
ANNOTATED = range(5, 15)


def _make_video(path, width=W, height=H, codec="libx264", pix_fmt="yuv420p", frames=N_FRAMES):
    """A smooth gradient with a small moving square far from the face box."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([80 + 0.3 * xx, 90 + 0.3 * yy, np.full_like(xx, 110.0)], -1).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "12"}
        for i in range(frames):
            img = base.copy()
            img[2:10, 2 + 2 * i:10 + 2 * i] = 230
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def _decode(path):
    return [f.image.astype(np.int16) for f in open_source(str(path), SourceConfig())]


def _records(make_records, frames=ANNOTATED, yaw=0.0, pitch=0.0, roll=0.0):
    x1, y1, x2, y2 = BOX
    q = quaternion_from_matrix(matrix_from_euler(yaw, pitch, roll)).astype(np.float32)
    pose = np.array([yaw, pitch, roll, (x1 + x2) / 2, (y1 + y2) / 2, 5.0], np.float32)
    return [dataclasses.replace(r, box=np.array(BOX, np.float32), pose=pose, pose_raw=pose,
                                quaternion=q, quaternion_raw=q)
            for r in make_records(max(frames) + 1, faces=1) if r.frame_index in frames]


def _border(img):
    """Pixels on the box's left and right edges, away from the corners and labels."""
    x1, y1, x2, y2 = (int(v) for v in BOX)
    return np.concatenate([img[y1 + 8:y2 - 8, x1:x1 + 2].reshape(-1, 3),
                           img[y1 + 8:y2 - 8, x2 - 1:x2 + 1].reshape(-1, 3)])


def test_boxes_are_drawn_on_annotated_frames_only(tmp_path, make_records):
    src = _make_video(tmp_path / "in.mp4")
    out = annotate_video(src, _records(make_records), tmp_path / "out.mp4")
    assert out == tmp_path / "out.mp4" and out.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp left

    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert s.average_rate == Fraction(FPS)
    before, after = _decode(src), _decode(out)
    assert len(after) == len(before) == N_FRAMES
    for i, (a, b) in enumerate(zip(before, after)):
        assert b.shape == a.shape == (H, W, 3)
        diff = np.abs(_border(b) - _border(a)).mean()
        if i in ANNOTATED:
            assert diff > 40, (i, diff)
        else:
            assert diff < 4, (i, diff)
            assert np.abs(b - a).mean() < 3, i        # whole frame unchanged (up to coding)


def test_odd_sizes_are_padded_to_even(tmp_path, make_records):
    src = _make_video(tmp_path / "odd.mkv", width=W - 1, height=H - 1, codec="ffv1",
                      pix_fmt="yuv444p", frames=16)
    # the run's Config is accepted too (analyze passes it): its annotate section is used
    out = annotate_video(src, _records(make_records), tmp_path / "odd_out.mp4", Config())
    frames = _decode(out)
    assert len(frames) == 16 and frames[0].shape == (H, W, 3)


def test_pose_axes_follow_the_aflw_signs(make_records):
    rec = _records(make_records, frames=[0])[0]
    cx, cy = (BOX[0] + BOX[2]) / 2, (BOX[1] + BOX[3]) / 2
    origin, ends, depth = axis_endpoints(rec)
    assert np.allclose(origin, (cx, cy))
    length = 0.5 * (BOX[2] - BOX[0])
    assert np.allclose(ends[0], (cx + length, cy)) and np.allclose(ends[1], (cx, cy - length))
    assert np.allclose(ends[2], (cx, cy)) and depth[2] == pytest.approx(1.0)   # z at the viewer
    nose = lambda **a: axis_endpoints(_records(make_records, frames=[0], **a)[0])[1][2]
    assert nose(yaw=30)[0] < cx - 5           # yaw > 0: turns toward the image's left
    assert nose(pitch=20)[1] < cy - 5         # pitch > 0: looks up (v grows downward)
    x_end = axis_endpoints(_records(make_records, frames=[0], roll=30)[0])[1][0]
    assert x_end[1] > cy + 5                  # roll > 0: clockwise, the +x end dips
    # Euler fallback when the quaternion is not a rotation gives the same axes
    good = _records(make_records, frames=[0], yaw=30)[0]
    bad = dataclasses.replace(good, quaternion=np.zeros(4, np.float32))
    assert np.allclose(axis_endpoints(bad)[1], axis_endpoints(good)[1], atol=1e-4)


def test_a_failure_leaves_no_output_file(tmp_path, make_records, monkeypatch):
    src = _make_video(tmp_path / "in.mp4")
    calls = []

    def boom(image, rec, cfg):
        calls.append(rec.frame_index)
        if len(calls) == 3:
            raise RuntimeError("boom")

    monkeypatch.setattr(streamer.report.annotate, "_draw_record", boom)
    with pytest.raises(RuntimeError, match="boom"):
        annotate_video(src, _records(make_records), tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_records_of_several_streams_are_refused(tmp_path, make_records):
    src = _make_video(tmp_path / "in.mp4", frames=2)
    mixed = make_records(1, stream_id="a") + make_records(1, stream_id="b")
    with pytest.raises(ValueError, match="several streams"):
        annotate_video(src, mixed, tmp_path / "out.mp4")


def test_the_emotion_label_is_written_beside_the_track_id(make_records):
    """Above the box: "id 1" alone for data without emotion, longer text with it, and
    different text for different labels."""
    from streamer.report.annotate import AnnotateConfig, _draw_record

    rec = dataclasses.replace(_records(make_records, frames=[0])[0], box=np.array([100, 120, 300, 320], np.float32))
    def strip(emotion):
        img = np.zeros((480, 640, 3), np.uint8)
        _draw_record(img, dataclasses.replace(rec, emotion=emotion), AnnotateConfig())
        return img[85:118, 100:400].any(-1)      # the text row above the box's top edge
    bare, happy, sad = strip(""), strip("happy"), strip("sad")
    cols = lambda m: np.flatnonzero(m.any(0))
    assert cols(happy).max() > cols(bare).max() + 20 and cols(sad).max() > cols(bare).max() + 20
    assert (happy != sad).any() and np.array_equal(happy[:, :cols(bare).max()], bare[:, :cols(bare).max()])


def test_progress_is_reported_through_the_callback_not_printed(tmp_path, make_records, capsys):
    src = _make_video(tmp_path / "in.mp4", frames=6)
    seen = []
    annotate_video(src, _records(make_records, frames=range(2, 4)), tmp_path / "out.mp4",
                   on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(n, 6) for n in range(1, 7)]
    assert capsys.readouterr() == ("", "")
