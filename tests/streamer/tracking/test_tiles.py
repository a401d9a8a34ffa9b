"""streamer.tracking.tiles: the tile rotation, merging the regions' faces, and what a run sees."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import DetectorConfig, TileMode, TrackerConfig
from streamer.pipeline.session import detector_input
from streamer.sources.frames import Frame
from streamer.tracking.follow import Follower
from streamer.tracking.tiles import VISIBLE_PX, DetectionPlan, Region, TileRotation, tile_grid
from streamer.tracking.tracker import Tracker
from workers.prediction import Detections

REAL = Path(__file__).resolve().parents[4] / "shared/data/real"


def dets(boxes, scores) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    points = np.repeat(boxes[:, None, :2], 5, axis=1)   # landmarks at each box's corner
    return Detections(boxes, np.asarray(scores, np.float32), points)


def test_the_tiles_of_1080p_cover_it_with_overlap_and_720p_gets_none_unless_asked():
    cfg = DetectorConfig()
    tiles = tile_grid(1920, 1080, cfg)
    whole = Region.whole(1920, 1080, cfg.max_side)
    assert (whole.width, whole.height, whole.scale) == (640, 360, 1 / 3)
    assert {(t.width, t.height) for t in tiles} == {(224, 224)}          # tile_side at tile_max_side 960
    assert {t.scale for t in tiles} == {0.5}
    covered = np.zeros((1080, 1920), int)
    for t in tiles:
        covered[t.y1:t.y2, t.x1:t.x2] += 1
        assert t.inner == (t.x1 > 0, t.y1 > 0, t.x2 < 1920, t.y2 < 1080)
    assert covered.min() >= 1
    # neighbours overlap by at least the largest face the whole frame may miss
    xs = sorted({(t.x1, t.x2) for t in tiles})
    assert min(a[1] - b[0] for a, b in zip(xs, xs[1:])) >= VISIBLE_PX / whole.scale
    assert len(tiles) == 15
    assert tile_grid(1280, 720, cfg) == []                                  # auto: 720p costs nothing
    assert len(tile_grid(1280, 720, replace(cfg, tiles=TileMode.ON))) > 0
    assert tile_grid(1920, 1080, replace(cfg, tiles=TileMode.OFF)) == []
    assert tile_grid(1920, 1080, replace(cfg, tile_max_side=640)) == []    # no finer than the whole


def test_a_rotation_visits_every_tile_in_turn_and_small_frames_see_the_whole_only():
    cfg = DetectorConfig()
    rotation = TileRotation(cfg)
    tiles = tile_grid(1920, 1080, cfg)
    plans = [rotation.plan(1920, 1080) for _ in range(len(tiles) + 1)]
    assert all(p.tiled and p.regions[0] == Region.whole(1920, 1080, 640) for p in plans)
    assert [p.regions[1] for p in plans] == tiles + tiles[:1]
    assert rotation.plan(1280, 720).regions == (Region.whole(1280, 720, 640),)


def test_the_whole_region_is_the_frame_the_detector_always_saw():
    image = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    plan = TileRotation(DetectorConfig()).plan(1920, 1080)
    whole, tile = plan.inputs(image)
    small, scale = detector_input(image, 640)
    assert np.array_equal(whole, small) and scale == plan.regions[0].scale
    t = plan.regions[1]
    assert tile.shape == (t.height, t.width, 3) and tile.flags.c_contiguous
    # one region: boxes come back divided by the scale, exactly as before tiles
    only = DetectionPlan(plan.regions[:1])
    got = only.merge([dets([[10, 20, 40, 60]], [0.9])], 0.4)
    np.testing.assert_array_equal(got.boxes, np.array([[10, 20, 40, 60]], np.float32) / scale)


def test_merge_moves_tile_faces_to_the_frame_drops_cut_ones_and_keeps_the_best_of_a_pair():
    whole = Region(0, 0, 1920, 1080, 640, 360)
    tile = Region(600, 300, 984, 684, 256, 256, (True, True, True, True))   # scale 2/3
    plan = DetectionPlan((whole, tile))
    found = [dets([[250, 120, 272, 150]], [0.80]),                 # a face in both, scored lower here
             dets([[100, 40, 145, 100],                            # that face, seen larger: 0.95
                   [0, 100, 30, 140],                              # cut by the tile's left edge
                   [20, 150, 50, 190]], [0.95, 0.99, 0.9])]        # a small face only the tile finds
    got = plan.merge(found, 0.4)
    np.testing.assert_allclose(got.scores, [0.95, 0.9])
    np.testing.assert_allclose(got.boxes, np.array([[750, 360, 817.5, 450], [630, 525, 675, 585]]), atol=1e-3)
    np.testing.assert_allclose(got.landmarks[1, 0], [630, 525], atol=1e-3)
    assert len(plan.merge(found, 0.4, min_face_px=50)) == 1    # 45 px in the frame: too small
    with pytest.raises(ValueError, match="2 regions"):
        plan.merge(found[:1], 0.4)


def test_a_run_sees_large_faces_anywhere_and_small_ones_only_in_its_tile():
    whole = Region(0, 0, 1920, 1080, 640, 360)
    tile = Region(600, 300, 984, 684, 256, 256, (True, True, True, True))
    boxes = np.array([[100, 100, 250, 280],     # 150 px: 50 at a third, seen by the whole frame
                      [700, 400, 770, 480],     # 70 px in the tile: 47 px there
                      [100, 100, 160, 170],     # 60 px outside it: 20 px at a third
                      [700, 400, 730, 430]])    # 30 px in the tile: 20 px there, too small
    assert DetectionPlan((whole, tile)).sees(boxes).tolist() == [True, True, False, False]
    assert DetectionPlan((whole,)).sees(boxes).tolist() == [True] * 4   # no tile: as before


def test_a_track_the_run_could_not_see_is_followed_on_and_one_it_could_is_lost():
    tracker = Tracker(TrackerConfig(appearance=False))
    small, other = [700, 400, 770, 480], [100, 100, 160, 170]
    first = tracker.update(np.array([small, other]), np.array([0.9, 0.9]), 0)
    ids = [t.track_id for t in first]
    plan = DetectionPlan((Region(0, 0, 1920, 1080, 640, 360),
                          Region(600, 300, 984, 684, 256, 256, (True, True, True, True))))
    # neither is found at frame 10: the one in the tile is lost, the other is followed on
    tracks = tracker.update(np.zeros((0, 4)), np.zeros(0), 10, sees=plan.sees)
    assert [(t.track_id, t.source, t.det_index) for t in tracks] == [(ids[1], "tracking", -1)]
    np.testing.assert_allclose(tracks[0].box, other, atol=1e-6)
    # past max_lost_frames since the detector last found it, it is still followed
    for f in range(11, 46):
        assert [t.track_id for t in tracker.follow(f, {})] == [ids[1]] and tracker.ended_ids == [ids[0]] * (f == 31)
    # without ``sees`` a miss loses it, as always
    tracker.update(np.zeros((0, 4)), np.zeros(0), 46)
    assert tracker.follow(47, {}) == []


def test_the_follower_plans_regions_for_detected_frames_only():
    fol = Follower(TrackerConfig(appearance=False, cuts=False), every_frames=5, presence_threshold=0.5,
                   regions=TileRotation(DetectorConfig()))
    image = np.zeros((1080, 1920, 3), np.uint8)
    plans = [fol.plan(Frame(i, i / 30, image)) for i in range(11)]
    assert [len(p.regions) for p in plans] == [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2]
    assert len({p.regions.regions[1] for p in plans if p.detect}) == 3    # the next tile each run


@pytest.mark.skipif(not (REAL / "obama-720p.jpg").exists(), reason="shared real media not present")
def test_a_small_face_in_1080p_is_found_in_its_tiles_and_not_in_the_shrunk_frame():
    from workers.detector import FaceDetector

    cfg = DetectorConfig(tile_max_side=1920, min_face_px=0)       # tiles at full resolution
    bgr = cv2.imread(str(REAL / "obama-720p.jpg"))
    assert bgr is not None
    photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    detector = FaceDetector(cfg, threads=1)
    (box,) = detector.detect([photo])[0].boxes
    s = 40 / (box[3] - box[1])            # 40 px tall: 13 px to the detector at a third
    small = cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    x, y = 900, 500
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    want = box * s + [x, y, x, y]
    rotation = TileRotation(cfg)
    plans = [rotation.plan(1920, 1080) for _ in range(len(rotation.tiles(1920, 1080)))]
    near = [p for p in plans if abs(p.regions[1].x1 - x) < 400 and abs(p.regions[1].y1 - y) < 400]
    found = []
    for plan in near:
        got = plan.merge(detector.detect(plan.inputs(frame)), cfg.nms_threshold)
        hit = bool(len(got)) and bool((np.abs(got.boxes - want).max(axis=1) < 8).any())
        t = plan.regions[1]
        holds = t.x1 < want[0] - 10 and t.y1 < want[1] - 10 and want[2] + 10 < t.x2 and want[3] + 10 < t.y2
        found.append((holds, hit))
    assert any(holds for holds, _ in found) and all(hit == holds for holds, hit in found)
    whole = DetectionPlan(plans[0].regions[:1])
    assert len(whole.merge(detector.detect(whole.inputs(frame)), 0.4)) == 0
