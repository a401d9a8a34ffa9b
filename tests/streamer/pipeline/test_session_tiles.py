"""Tiles through the real session and detector replica: a face too small for the shrunk
whole frame is found by the runs whose tile holds it, in frame pixels, and by none
without tiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import _face_patches, _textured_background, write_video

from streamer.config import DetectorConfig, load_config
from testsupport.sessions import records_of_a_run
from workers.detector import FaceDetector

X, Y, SIDE = 120, 90, 66   # the face's patch in a 320x240 frame: its box about 44 px


def small_face_clip(path: Path, frames: int = 14) -> tuple[Path, np.ndarray]:
    (patch,) = _face_patches("obama-720p.jpg", SIDE)
    image = _textured_background()
    image[Y:Y + SIDE, X:X + SIDE] = patch
    (box,) = FaceDetector(DetectorConfig()).detect([image])[0].boxes   # at full resolution
    return write_video(path, [image] * frames, 25), box


def analyse(path: Path, tiles: str, replicas, out: Path) -> list:
    # the whole frame at 80 px (a quarter: the face is 11 px there), tiles of 160 at full
    # resolution: 3 x 2 of them, in turn, one a run, every frame a run
    cfg = load_config(overrides={
        "parquet": {"out": str(out)}, "session": {"progress_every_s": 0.0},
        "detector": {"every_frames": 1, "max_side": 80, "tiles": tiles, "tile_max_side": 320, "tile_side": 160}})
    return records_of_a_run(path, cfg, replicas)


def test_a_small_face_is_found_by_the_runs_whose_tile_holds_it(shared_replicas, tmp_path):
    path, want = small_face_clip(tmp_path / "small.mp4")
    found = [r for r in analyse(path, "on", shared_replicas, tmp_path / "on") if r.box_source == "detector"]
    # tiles (0,0) (80,0) (160,0) (0,80) (80,80) (160,80): the 2nd and 5th hold the face whole
    assert {r.frame_index for r in found} == {1, 4, 7, 10, 13}
    assert max(np.abs(np.asarray(r.box) - want).max() for r in found) < 4.0
    assert [r for r in analyse(path, "off", shared_replicas, tmp_path / "off") if r.box_source == "detector"] == []
