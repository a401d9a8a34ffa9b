"""Detection only when needed, through the real session with the shipped network (whose
landmarks place faces and whose presence probe says when a face is gone): a face is
reported on every frame, mostly from tracking, close to where every-frame detection
puts it; a face that walks out of the picture ends its track within a few frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import _face_patches, _textured_background, write_video

from streamer.config import load_config
from streamer.pipeline.replicas import Replicas
from testsupport.sessions import records_of_a_run
from workers import checkpoint

W, H, FPS = 320, 240, 25


@pytest.fixture(scope="module")
def shipped_replicas(ray_runtime):
    cfg = load_config(overrides={"model": {"num_cpus_per_replica": 0.5, "max_wait_ms": 5.0}})
    replicas = Replicas.start(cfg, str(checkpoint.default_path()))
    replicas.ready()
    yield replicas
    replicas.stop()


def analyse(path: Path, every_frames: int, replicas, out: Path) -> list:
    cfg = load_config(overrides={"parquet": {"out": str(out)}, "detector": {"every_frames": every_frames},
                                 "session": {"progress_every_s": 0.0}})
    return records_of_a_run(path, cfg, replicas)


def leaving_clip(path: Path, frames: int = 50, gone_from: int = 30) -> Path:
    """The face of obama-720p.jpg walking right, out of the picture by ``gone_from``."""
    (patch,) = _face_patches("obama-720p.jpg", 110)
    background = _textured_background()

    def images():
        for f in range(frames):
            image = background.copy()
            x = int(20 + (W - 20) * f / gone_from)
            if x < W:
                image[65:175, x:min(W, x + 110)] = patch[:, :min(110, W - x)]
            yield image

    return write_video(path, images(), FPS)


def test_one_face_every_10th_frame_detected_is_reported_on_every_frame_near_the_detector(
        face_video, shipped_replicas, tmp_path):
    every = analyse(face_video.path, 1, shipped_replicas, tmp_path / "every")
    tracked = analyse(face_video.path, 10, shipped_replicas, tmp_path / "tracked")
    assert [r.frame_index for r in tracked] == list(range(face_video.frames))
    assert {r.track_id for r in tracked} == {1}
    assert [r.frame_index for r in tracked if r.box_source == "detector"] == [0, 10, 20, 30]
    assert {r.box_source for r in every} == {"detector"}
    assert all(0.5 < r.presence <= 1.0 for r in tracked)
    # the face moves 5 px a frame (a tenth of its box): the first followed frames, before
    # the regressor's first answer and with no velocity known, trail it; later ones stay
    # within a few pixels of where the detector puts it
    error = np.array([np.abs(t.box - e.box).max() for t, e in zip(tracked, every)])
    side = np.mean([e.box[2] - e.box[0] for e in every])
    assert np.median(error) <= 5.0 and error[10:].max() < 0.2 * side, (error.round(1).tolist(), side)
    yaw = np.array([abs(t.pose_raw[0] - e.pose_raw[0]) for t, e in zip(tracked, every)])
    assert np.median(yaw) < 2.0, yaw.round(1).tolist()


def test_a_face_that_leaves_ends_its_track_within_a_few_frames(shipped_replicas, tmp_path):
    path = leaving_clip(tmp_path / "leaving.mp4")
    every = analyse(path, 1, shipped_replicas, tmp_path / "every")
    tracked = analyse(path, 10, shipped_replicas, tmp_path / "tracked")
    last_seen = max(r.frame_index for r in every)
    assert {r.track_id for r in tracked} == {1}
    last_reported = max(r.frame_index for r in tracked)
    # the probe still sees the half face at the edge for a frame or two
    assert last_seen - 2 <= last_reported <= last_seen + 6, (last_seen, last_reported)
    # the detector ran because presence fell, not only on its schedule
    detected = [r.frame_index for r in tracked if r.box_source == "detector"]
    assert set(detected) - {0, 10, 20, 30, 40}, detected


def test_a_crop_that_lost_its_face_does_not_move_the_published_values(shipped_replicas, tmp_path):
    # the face walks out: the last followed crops frame background, which the probe doubts
    # (presence below its threshold); their readings are published raw, and the smoothed
    # values stay where the last trusted reading left them
    threshold = 0.5
    tracked = analyse(leaving_clip(tmp_path / "leaving.mp4"), 10, shipped_replicas, tmp_path / "tracked")
    doubted = [k for k, r in enumerate(tracked)
               if k > 0 and r.box_source == "tracking" and r.presence < threshold]
    assert doubted, [round(r.presence, 2) for r in tracked]
    for k in doubted:
        before, r = tracked[k - 1], tracked[k]
        for field in ("pose", "quaternion", "expression", "shape", "emotion_probs"):
            np.testing.assert_array_equal(getattr(r, field), getattr(before, field), err_msg=f"{field} at {k}")
        assert not np.array_equal(r.pose_raw, before.pose_raw)
