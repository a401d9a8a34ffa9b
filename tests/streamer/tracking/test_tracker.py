"""Tracker behaviour on synthetic face trajectories with known identities."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.config import TrackerConfig
from streamer.tracking.tracker import Tracker
from workers.boxes import iou_matrix

SIZE = 80.0


def box_at(cx, cy, size=SIZE):
    return np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])


def run(frames, cfg=None):
    """Feed ``frames`` = [(frame_index, [(gt_id, box, score), ...]), ...] to one tracker.

    Returns (per gt id the [(frame_index, track_id)] it was reported with, the frame at
    which each track id ended), and checks on the way that every id is fresh: an id never
    comes back after it ended and never belongs to two identities.
    """
    tracker = Tracker(cfg or TrackerConfig())
    reported: dict[int, list[tuple[int, int]]] = {}
    owner: dict[int, int] = {}
    ended: dict[int, int] = {}
    for frame_index, dets in frames:
        boxes = np.array([b for _, b, _ in dets]).reshape(-1, 4)
        scores = np.array([s for _, _, s in dets])
        tracks = tracker.update(boxes, scores, frame_index)
        assert len({t.track_id for t in tracks}) == len(tracks)
        for t in tracks:
            gt = dets[t.det_index][0]
            np.testing.assert_array_equal(t.box, boxes[t.det_index])   # measured, not filtered
            assert owner.setdefault(t.track_id, gt) == gt, "one id, two faces"
            assert t.track_id not in ended, "ended id came back"
            reported.setdefault(gt, []).append((frame_index, t.track_id))
        for tid in tracker.ended_ids:
            ended[tid] = frame_index
    return reported, ended


def id_switches(reported) -> int:
    n = 0
    for seq in reported.values():
        ids = [tid for _, tid in seq]
        n += sum(a != b for a, b in zip(ids, ids[1:]))
    return n


def crossing(rng, frame_indices=range(60), n=60, offset=30.0):
    """Face 1 moves right, face 2 left, ``offset`` px apart vertically: they overlap
    mid-way. Only ``frame_indices`` are processed (sampling, dropped frames)."""
    frames = []
    for f in frame_indices:
        x = 50 + 400 * f / (n - 1)
        a = box_at(x, 100) + rng.normal(0, 2, 4)
        b = box_at(500 - x, 100 + offset) + rng.normal(0, 2, 4)
        frames.append((f, [(1, a, rng.uniform(0.75, 0.95)), (2, b, rng.uniform(0.75, 0.95))]))
    return frames


def test_crossing_faces_keep_their_ids():
    frames = crossing(np.random.default_rng(0))
    max_iou = max(iou_matrix(d[0][1][None], d[1][1][None])[0, 0] for _, d in frames)
    assert max_iou > 0.35  # the scenario really makes the boxes overlap
    reported, _ = run(frames)
    assert id_switches(reported) == 0
    assert {gt: len(seq) for gt, seq in reported.items()} == {1: 60, 2: 60}
    assert reported[1][0][1] != reported[2][0][1]


@pytest.mark.parametrize("every", [2, 3])
def test_crossing_with_sampled_frames(every):
    frames = crossing(np.random.default_rng(1), range(0, 60, every))
    reported, _ = run(frames)
    assert id_switches(reported) == 0
    assert all(len(seq) == len(frames) for seq in reported.values())


def test_crossing_during_dropped_frames():
    """Live streams drop frames: ten are lost while the faces pass each other, so they
    reappear in each other's place. Motion must be predicted over the real gap (a
    tracker that assumes one frame per call swaps these two faces)."""
    indices = [*range(0, 55), *range(65, 120)]
    frames = crossing(np.random.default_rng(2), indices, n=120, offset=20.0)
    reported, _ = run(frames)
    assert id_switches(reported) == 0
    assert all(len(seq) == len(frames) for seq in reported.values())


def test_occlusion_gap_keeps_id():
    rng = np.random.default_rng(2)
    frames = []
    for f in range(60):
        dets = [(2, box_at(500, 300) + rng.normal(0, 2, 4), 0.9)]
        if not 20 <= f < 30:   # face 1 hidden for 10 frames while it keeps moving
            dets.insert(0, (1, box_at(60 + 5 * f, 120) + rng.normal(0, 2, 4), 0.85))
        frames.append((f, dets))
    reported, ended = run(frames)
    assert id_switches(reported) == 0
    assert [f for f, _ in reported[1]] == [f for f in range(60) if not 20 <= f < 30]
    assert len(reported[2]) == 60
    assert not ended


def test_low_score_detection_continues_track():
    rng = np.random.default_rng(3)
    frames = []
    for f in range(40):
        score = 0.4 if f in (15, 16, 17) else 0.9     # a blurred, turned face
        dets = [(1, box_at(100 + 3 * f, 200) + rng.normal(0, 2, 4), score)]
        if f == 20:   # a lone low-score box starts nothing
            dets.append((9, box_at(600, 600), 0.5))
        frames.append((f, dets))
    reported, _ = run(frames)
    assert id_switches(reported) == 0
    assert len(reported[1]) == 40   # the low-score frames were recovered, not dropped
    assert 9 not in reported


def test_face_leaves_and_new_face_gets_new_id():
    cfg = TrackerConfig(max_lost_frames=30)
    frames = []
    for f in range(120):
        dets = [(2, box_at(600, 400), 0.9)]           # stays all along
        if f < 20:
            dets.append((1, box_at(100, 100), 0.9))   # leaves at frame 20
        if f >= 30:
            dets.append((3, box_at(350, 100), 0.9))   # enters elsewhere while 1 is lost
        if f >= 80:
            dets.append((4, box_at(100, 100), 0.9))   # enters where 1 was, after it ended
        frames.append((f, dets))
    reported, ended = run(frames, cfg)
    assert id_switches(reported) == 0
    ids = {gt: seq[0][1] for gt, seq in reported.items()}
    assert len(set(ids.values())) == 4
    assert ended == {ids[1]: 19 + 31}                 # unseen for more than 30 frames
    assert ids[4] > max(ids[1], ids[2], ids[3])       # fresh id, counting up


def test_lost_time_counts_source_frames_not_calls():
    cfg = TrackerConfig(max_lost_frames=30)
    frames = [(f, [(1, box_at(100, 100), 0.9)] if f < 20 else []) for f in range(0, 100, 5)]
    _, ended = run(frames, cfg)
    assert list(ended.values()) == [50]               # last seen 15: 35 > 30 at 50, 30 at 45


def test_min_hits_delays_reporting():
    frames = [(f, [(1, box_at(100 + 2 * f, 100), 0.9)]) for f in range(10)]
    reported, _ = run(frames, TrackerConfig(min_hits=3))
    assert [f for f, _ in reported[1]] == list(range(2, 10))
    assert reported[1][0][1] == 1                     # ids are handed out on confirmation


def test_frame_index_must_increase():
    tracker = Tracker()
    tracker.update(np.zeros((0, 4)), np.zeros(0), 5)
    with pytest.raises(ValueError):
        tracker.update(np.zeros((0, 4)), np.zeros(0), 5)


# ---- appearance, re-acquisition, cuts: boxes drawn on an image the tracker embeds ------

def faces_image(placed, shape=(480, 640)) -> np.ndarray:
    """A grey frame with each (looks, box) pasted: ``looks`` is a seed for a face-sized
    pattern of its own colours, so boxes of one seed look alike and of two seeds not."""
    image = np.full((*shape, 3), 90, np.uint8)
    for looks, box in placed:
        x1, y1, x2, y2 = np.round(box).astype(int)
        rng = np.random.default_rng(looks)
        pattern = rng.integers(40, 215, (4, 4, 3)).astype(np.uint8)
        image[y1:y2, x1:x2] = cv2.resize(pattern, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    return image


def run_images(frames, cfg=None, **kw):
    """Like :func:`run`, with ``frames`` = [(frame_index, [(gt_id, box, score, looks)],
    cut)], the image drawn from the boxes and given to the tracker."""
    tracker = Tracker(cfg or TrackerConfig(), **kw)
    reported, ended = {}, {}
    for frame_index, dets, cut in frames:
        boxes = np.array([b for _, b, _, _ in dets]).reshape(-1, 4)
        image = faces_image([(looks, b) for _, b, _, looks in dets])
        tracks = tracker.update(boxes, [s for _, _, s, _ in dets], frame_index, image=image, cut=cut)
        for t in tracks:
            reported.setdefault(dets[t.det_index][0], []).append((frame_index, t.track_id))
        for tid in tracker.ended_ids:
            ended[tid] = frame_index
    return reported, ended


def bounce(appearance: bool):
    """Two faces meet head-on in one lane, face 2 passing behind face 1 (not detected
    while they overlap by more than a quarter), and go back the way they came: a motion
    model predicts each carries on, into the other's place."""
    frames = []
    for f in range(40):
        x = 100 + 10 * min(f, 20) - 10 * max(f - 20, 0)    # 100 → 300 at frame 20 → 110
        a, b = box_at(x, 200), box_at(600 - x, 200)         # they meet at 300
        dets = [(1, a, 0.9, 11)]
        if abs(600 - 2 * x) >= 60:
            dets.append((2, b, 0.9, 22))
        frames.append((f, dets[::-1], False))               # face 1 drawn last, in front
    return run_images(frames, TrackerConfig(appearance=appearance))


def test_appearance_keeps_ids_when_faces_meet_and_part():
    reported, _ = bounce(appearance=True)
    assert id_switches(reported) == 0
    assert len({tid for seq in reported.values() for _, tid in seq}) == 2
    moved_only, _ = bounce(appearance=False)
    assert id_switches(moved_only) > 0    # what the cue is for: motion alone swaps them


def test_lost_face_is_reacquired_elsewhere_and_a_stranger_is_not():
    frames = []
    for f in range(75):
        dets = []
        if f < 15:
            dets.append((1, box_at(100 + 8 * f, 150), 0.9, 11))  # walks right, then is gone
        if f >= 28:
            dets.append((1, box_at(550 - 4 * (f - 28), 350), 0.9, 11))   # back, elsewhere
        if 20 <= f < 40:
            dets.append((3, box_at(300, 380, 70), 0.9, 33))       # a stranger meanwhile
        frames.append((f, dets, False))
    reported, ended = run_images(frames, TrackerConfig(max_lost_frames=30))
    assert id_switches(reported) == 0
    assert reported[1][0][1] != reported[3][0][1]
    assert len(reported[1]) == 15 + 47
    assert ended == {reported[3][0][1]: 39 + 31}        # the stranger left; 1 never ended


def test_reacquisition_needs_the_lost_budget():
    frames = [(f, [(1, box_at(100, 150), 0.9, 11)] if f < 10 else [], False) for f in range(10)]
    frames += [(f, [(1, box_at(500, 300), 0.9, 11)], False) for f in range(50, 60)]
    reported, ended = run_images(frames, TrackerConfig(max_lost_frames=30))
    ids = sorted({tid for _, tid in reported[1]})
    assert ids == [1, 2] and list(ended) == [1]          # ended at 50, then a new id


def test_cut_ends_every_track_and_new_ids_follow():
    frames = []
    for f in range(20):
        cut = f == 10
        # the same two boxes go on after the cut: only the cut tells the shots apart
        dets = [(1 if f < 10 else 3, box_at(100, 100), 0.9, 11),
                (2 if f < 10 else 4, box_at(400, 300), 0.9, 22)]
        frames.append((f, dets, cut))
    reported, ended = run_images(frames)
    assert id_switches(reported) == 0
    first = {gt: seq[0][1] for gt, seq in reported.items()}
    assert sorted(first.values()) == [1, 2, 3, 4]
    assert min(first[3], first[4]) > max(first[1], first[2])
    assert ended == {first[1]: 10, first[2]: 10}
    assert [len(reported[g]) for g in (1, 2, 3, 4)] == [10, 10, 10, 10]


def test_distance_is_injected():
    """A distance that forbids every pairing makes every frame's face a new track."""
    never = lambda tracks, dets: np.full((len(tracks.boxes), len(dets.boxes)), np.inf)
    tracker = Tracker(TrackerConfig(max_lost_frames=0), distance=never, reacquire=never)
    ids = [tracker.update([box_at(100, 100)], [0.9], f)[0].track_id for f in range(3)]
    assert ids == [1, 2, 3]
