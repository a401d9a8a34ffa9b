"""Detection only when needed: the schedule, the tracker between detector runs, the
landmark → box rule, and the Follower that joins them (no models: boxes and landmarks
are made here)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.config import TrackerConfig
from streamer.sources.frames import Frame
from streamer.tracking.follow import Follower, FramePlan
from streamer.tracking.placement import BOX_SIDES, CENTRE_OFFSET, box_from_landmarks
from streamer.tracking.schedule import DetectionSchedule
from streamer.tracking.tracker import Tracker

NO_CUTS = TrackerConfig(cuts=False, appearance=False)


def box_at(cx, cy, w=100.0):
    """A box of the detector's shape (as box_from_landmarks makes them)."""
    h = w * BOX_SIDES[1] / BOX_SIDES[0]
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def landmarks_for(box):
    """68 points whose extent and centre make box_from_landmarks give ``box`` back."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    extent = (box[2] - box[0]) / BOX_SIDES[0]
    lcx, lcy = cx - CENTRE_OFFSET[0] * extent, cy - CENTRE_OFFSET[1] * extent
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.column_stack([np.cos(t), np.sin(t)]) * extent / 2 + [lcx, lcy]   # a circle: extent on both axes


def test_schedule_every_n_frames_counts_frame_indices_and_cuts_and_requests_come_first():
    s = DetectionSchedule(10)
    assert [f for f in range(25) if s.due(f)] == [0, 10, 20]
    s = DetectionSchedule(10)
    # frames 3..8 dropped: 12 is 12 frames after 0
    assert [f for f in (0, 1, 2, 9, 12, 13, 22, 23) if s.due(f)] == [0, 12, 22]
    s = DetectionSchedule(10)
    assert s.due(0) and not s.due(1)
    assert s.due(2, cut=True)
    s.request()
    assert s.due(3) and not s.due(4)   # one request, one run
    assert [f for f in range(5, 14) if s.due(f)] == [13]   # counted from the last run
    one = DetectionSchedule(1)
    assert all(one.due(f) for f in range(5))
    with pytest.raises(ValueError):
        DetectionSchedule(0)


def test_box_from_landmarks_applies_the_fitted_offset_and_sides():
    pts = np.zeros((1, 68, 2))
    pts[0, :, 0] = np.linspace(100, 200, 68)   # extent 100 (x), centre (150, 40)
    pts[0, :, 1] = np.linspace(0, 80, 68)
    box = box_from_landmarks(pts)[0]
    cx, cy = 150 + 100 * CENTRE_OFFSET[0], 40 + 100 * CENTRE_OFFSET[1]
    np.testing.assert_allclose(box, [cx - 50 * BOX_SIDES[0], cy - 50 * BOX_SIDES[1],
                                     cx + 50 * BOX_SIDES[0], cy + 50 * BOX_SIDES[1]])
    np.testing.assert_allclose(box_from_landmarks(landmarks_for(box_at(300, 200)))[0], box_at(300, 200), atol=1e-9)


def test_follow_moves_tracks_with_late_measurements_each_used_once():
    tracker = Tracker(NO_CUTS)
    v = 4.0   # px per frame, to the right
    for f in range(3):   # detected: the filter learns the velocity
        (t,) = tracker.update(box_at(100 + v * f, 100)[None], [0.9], f)
        assert t.source == "detector"
    # followed with the true box of frame f - 3 (the regressor's lag): the velocity,
    # not yet known after three detections, is learnt from the late boxes
    for f in range(3, 25):
        (t,) = tracker.follow(f, {t.track_id: (f - 3, box_at(100 + v * (f - 3), 100))})
        assert (t.track_id, t.source, t.det_index, t.score) == (1, "tracking", -1, pytest.approx(0.9))
        # within about the follow dead band (2% of the 100 px side) once the velocity is learnt
        np.testing.assert_allclose(t.box, box_at(100 + v * f, 100), atol=7.0 if f < 15 else 3.5)
    # the same measurement again is not applied twice: the box moves on by prediction alone
    (a,) = tracker.follow(25, {1: (21, box_at(1000, 100))})
    np.testing.assert_allclose(a.box, box_at(100 + v * 25, 100), atol=3.5)   # not pulled to x=1000


@pytest.mark.parametrize("v", [0.0, 40.0])
def test_a_new_fast_face_is_caught_by_its_first_late_measurement_and_a_still_one_stays(v):
    """A face walking 40 px a frame (crowd_1080p), 90 px wide, detected once at frame 0;
    the regressor's boxes (true to 1 px) come back 3 frames late. Nothing is known of its
    speed before the first of them (frame 1's, at frame 4), so frames 1-3 stay where it was
    detected; from frame 4 on the box is on the face (before: 121 px behind at frame 4 and
    58 px at frame 7, off its crop). A still face with the same wobble keeps a still box."""
    tracker = Tracker(NO_CUTS)
    tracker.update(box_at(200, 300, w=90.0)[None], [0.9], 0)
    rng = np.random.default_rng(0)
    for f in range(1, 20):
        seen = {} if f < 4 else {1: (f - 3, box_at(200 + v * (f - 3) + rng.normal(0, 1), 300, w=90.0))}
        (t,) = tracker.follow(f, seen)
        cx = (t.box[0] + t.box[2]) / 2
        if v == 0:
            assert cx == pytest.approx(200, abs=0.5)
        elif f < 4:
            assert cx == pytest.approx(200)
        else:
            assert cx == pytest.approx(200 + v * f, abs=9.0)   # a tenth of the side


def test_a_followed_face_the_detector_finds_away_from_its_box_moves_on_at_that_speed():
    """Followed without a usable measurement (its crops slid off), a face 40 px a frame is
    found 160 px on at the next detector run, with no box overlap: taken back by
    appearance, its velocity comes from that displacement and it is followed on with it
    (before: reset standing still, 40 px behind a frame, off its crop again by the third)."""
    alike = lambda image, boxes: np.tile([1.0, 0.0], (len(boxes), 1))   # every face alike
    image = np.zeros((8, 8, 3), np.uint8)
    tracker = Tracker(TrackerConfig(cuts=False), embed=alike)
    tracker.update(box_at(300, 300, w=90.0)[None], [0.9], 0, image=image)
    for f in (1, 2, 3):
        tracker.follow(f, {})
    (t,) = tracker.update(box_at(460, 300, w=90.0)[None], [0.9], 4, image=image)
    assert (t.track_id, t.source) == (1, "detector")
    for f in range(5, 10):
        (t,) = tracker.follow(f, {})
        assert (t.box[0] + t.box[2]) / 2 == pytest.approx(300 + 40 * f, abs=4.5)
    # lost instead (the detector missed it at a run): taken back standing still, as before
    tracker = Tracker(TrackerConfig(cuts=False), embed=alike)
    tracker.update(box_at(300, 300, w=90.0)[None], [0.9], 0, image=image)
    tracker.update(np.zeros((0, 4)), [], 1, image=image)
    tracker.update(box_at(460, 300, w=90.0)[None], [0.9], 4, image=image)
    (t,) = tracker.follow(5, {})
    assert (t.box[0] + t.box[2]) / 2 == pytest.approx(460)


def test_a_track_the_detector_missed_is_not_followed_and_a_doubted_one_ends():
    tracker = Tracker(NO_CUTS)
    tracker.update(np.stack([box_at(100, 100), box_at(400, 100)]), [0.9, 0.9], 0)
    assert [t.track_id for t in tracker.follow(1, {})] == [1, 2]
    # detector run: face 2 is missed; face 1 is there
    tracker.update(box_at(100, 100)[None], [0.9], 2)
    assert tracker.ended_ids == [] and tracker.ids() == {1, 2}
    assert [t.track_id for t in tracker.follow(3, {2: (2, box_at(400, 100))})] == [1]   # 2 is lost
    # doubted and unconfirmed: ends at once
    tracker.update(np.zeros((0, 4)), [], 4, confirm=frozenset({1}))
    assert tracker.ended_ids == [1] and tracker.ids() == {2}


def frame(i):
    return Frame(i, i / 30, np.zeros((8, 8, 3), np.uint8))


def test_follower_places_tracks_from_landmarks_and_a_low_presence_asks_for_the_detector():
    fol = Follower(NO_CUTS, every_frames=10, presence_threshold=0.5)
    affine = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])   # crop pixels = image pixels
    plans = []
    for f in range(6):
        plan = fol.plan(frame(f))
        cut, detect = plan.cut, plan.detect
        plans.append(detect)
        if detect:
            tracks = fol.track(frame(f), cut, box_at(100, 100)[None], np.array([0.95]))
        else:
            tracks = fol.track(frame(f), cut)
        assert [(t.track_id, t.source) for t in tracks] == [(1, "detector" if detect else "tracking")]
        # the regressor saw the face move 5 px right of where it was
        fol.observe(f, [1], landmarks_for(box_at(105 + 5 * f, 100))[None], affine, np.array([0.9]))
    assert plans == [True] + [False] * 5
    assert tracks[0].box[0] > box_at(100, 100)[0] + 10   # followed the landmarks, not the detection
    # presence falls: the next frame is detected, and the track ends unless confirmed
    fol.observe(5, [1], landmarks_for(box_at(130, 100))[None], affine, np.array([0.1]))
    plan = fol.plan(frame(6))
    cut, detect = plan.cut, plan.detect
    assert detect
    assert fol.track(frame(6), cut, np.zeros((0, 4)), np.zeros(0)) == []
    assert fol.tracker.ended_ids == [1]


def test_without_a_presence_probe_only_the_schedule_runs_the_detector():
    fol = Follower(NO_CUTS, every_frames=4, presence_threshold=None)
    affine = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])
    detected = []
    for f in range(9):
        plan = fol.plan(frame(f))
        cut, detect = plan.cut, plan.detect
        if detect:
            detected.append(f)
            fol.track(frame(f), cut, box_at(100, 100)[None], np.array([0.95]))
        else:
            fol.track(frame(f), cut)
        fol.observe(f, [1], landmarks_for(box_at(100, 100))[None], affine, np.array([np.nan]))
    assert detected == [0, 4, 8]


def test_a_still_face_keeps_a_still_box_though_its_landmark_box_sits_off_the_detectors():
    """The landmark box of this face sits 6 px right of and 5% wider than the detector's
    on every frame: followed frames keep the detector's box (the offset measured on the
    detected frames is taken out), so nothing saw-tooths with the schedule."""
    fol = Follower(NO_CUTS, every_frames=10, presence_threshold=0.5)
    affine = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])
    det, off = box_at(100, 100), box_at(106, 100, w=105.0)
    boxes = []
    for f in range(30):
        plan = fol.plan(frame(f))
        cut, detect = plan.cut, plan.detect
        tracks = fol.track(frame(f), cut, det[None], np.array([0.95])) if detect else fol.track(frame(f), cut)
        boxes.append(tracks[0].box)
        fol.observe(f, [1], landmarks_for(off)[None], affine, np.array([0.9]))
    np.testing.assert_allclose(np.array(boxes), np.tile(det, (30, 1)), atol=0.5)


def test_box_relation_round_trips():
    from streamer.tracking.placement import apply_relation, box_relation

    a, b, c = box_at(100, 80, 90.0), box_at(120, 70, 110.0), box_at(300, 200, 180.0)
    np.testing.assert_allclose(apply_relation(box_relation(a, b), b), a, atol=1e-9)
    moved = apply_relation(box_relation(a, b), c)       # the same relation on a box twice b's size
    np.testing.assert_allclose((moved[2] - moved[0]) / (c[2] - c[0]), (a[2] - a[0]) / (b[2] - b[0]))


def test_a_plan_says_cut_and_detect_and_a_cut_is_detected_at_once():
    """Still frames are followed between scheduled detector runs; the first frame of a new
    shot is a cut and goes to the detector though the schedule is not due."""
    rng = np.random.default_rng(0)
    shots = [cv2.resize(rng.integers(0, 255, (18, 32, 3), dtype=np.uint8), (320, 180),
                        interpolation=cv2.INTER_NEAREST) for _ in range(2)]
    fol = Follower(TrackerConfig(appearance=False), every_frames=10, presence_threshold=0.5)
    plans = [fol.plan(Frame(i, i / 30, shots[i >= 6])) for i in range(8)]
    assert plans == ([FramePlan(cut=False, detect=True)] + [FramePlan(cut=False, detect=False)] * 5
                     + [FramePlan(cut=True, detect=True), FramePlan(cut=False, detect=False)])
