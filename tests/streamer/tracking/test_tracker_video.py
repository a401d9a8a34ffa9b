"""Tracking quality on a generated video with known identities.

Real faces (patches of the shared photos) are pasted onto textured backgrounds and
encoded with libx264: in shot A two faces cross each other; a hard cut; in shot B one
face stays while another walks out of the frame and comes back. The real detector,
the cut detector and the tracker run on the decoded frames, as the session runs them,
and every reported track is checked against where each face was pasted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import write_video

from streamer.config import DetectorConfig, TrackerConfig
from streamer.tracking.cuts import CutDetector
from streamer.tracking.tracker import Tracker
from workers.detector import FaceDetector

REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "real"
W, H, FPS, SIDE = 320, 240, 25, 80
CUT = 30          # first frame of shot B
FRAMES = 72


@dataclass
class Clip:
    frames: list[np.ndarray]               # decoded RGB
    placed: list[dict[str, np.ndarray]]    # per frame: identity -> pasted square (x1, y1, x2, y2)


def face_patches(detector: FaceDetector, photo: str) -> list[np.ndarray]:
    """SIDE-px squares, 1.5 × the detected box, around each face of a shared photo, left to right."""
    image = cv2.cvtColor(cv2.imread(str(REAL / photo)), cv2.COLOR_BGR2RGB)
    patches = []
    for x1, y1, x2, y2 in sorted(detector.detect([image])[0].boxes.tolist()):
        half = max(x2 - x1, y2 - y1) * 0.75
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        square = image[max(int(cy - half), 0):int(cy + half), max(int(cx - half), 0):int(cx + half)]
        patches.append(cv2.resize(square, (SIDE, SIDE), interpolation=cv2.INTER_AREA))
    return patches


def background(seed: int, tint) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, (H // 8, W // 8, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC) * 0.5
    return np.clip(smooth + np.asarray(tint, np.float32), 0, 255).astype(np.uint8)


def positions(f: int) -> dict[str, tuple[int, int]]:
    """Top-left corner of each identity's patch at frame f (absent: not in the frame)."""
    if f < CUT:   # shot A: "a" goes right in the upper lane, "b" left in the lower; they cross
        t = f / (CUT - 1)
        return {"a": (int(10 + 220 * t), 50), "b": (int(230 - 220 * t), 100)}
    g = f - CUT   # shot B: "c" drifts; "d" walks out on the right (gone 12 frames) and back
    out = {"c": (30 + g, 80)}
    x = 200 + 12 * min(g, 12) - 12 * max(g - 24, 0)
    if x < W - SIDE // 2:
        out["d"] = (min(x, W - SIDE), 70) if x <= W - SIDE else (x, 70)
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Clip:
    detector = FaceDetector(DetectorConfig())
    faces = dict(zip("ab", face_patches(detector, "two_people.jpg")))
    faces["c"] = face_patches(detector, "obama-720p.jpg")[0]
    faces["d"] = face_patches(detector, "biden2.jpg")[0]
    shots = [background(1, (60, 40, 30)), background(2, (20, 60, 90))]
    path = tmp_path_factory.mktemp("tracking") / "identities.mp4"
    placed = []

    def images():
        for f in range(FRAMES):
            image = shots[f >= CUT].copy()
            boxes = {}
            for who, (x, y) in positions(f).items():
                visible = faces[who][:, : max(0, min(SIDE, W - x))]
                image[y:y + SIDE, x:x + visible.shape[1]] = visible
                boxes[who] = np.array([x, y, x + SIDE, y + SIDE], np.float64)
            placed.append(boxes)
            yield image

    write_video(path, images(), FPS)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == FRAMES
    return Clip(frames, placed)


@pytest.fixture(scope="module")
def detections(clip):
    return FaceDetector(DetectorConfig()).detect(clip.frames)


def identity(box: np.ndarray, placed: dict[str, np.ndarray]) -> str | None:
    """The identity whose pasted square holds the box's centre (nearest square centre)."""
    c = (box[:2] + box[2:]) / 2
    inside = {w: np.linalg.norm(c - (p[:2] + p[2:]) / 2) for w, p in placed.items()
              if p[0] <= c[0] <= p[2] and p[1] <= c[1] <= p[3]}
    return min(inside, key=inside.get) if inside else None


def track(clip, detections, indices, cfg: TrackerConfig | None = None):
    """Run cuts + tracker over the frames ``indices`` (the others dropped). Returns per
    identity its [(frame, track id)], the cut frames and the id → frame where it ended."""
    cfg = cfg or TrackerConfig()
    tracker, cuts = Tracker(cfg), CutDetector(cfg)
    seen: dict[str, list[tuple[int, int]]] = {}
    cut_frames, ended = [], {}
    for f in indices:
        cut = cuts.update(clip.frames[f])
        if cut:
            cut_frames.append(f)
        det = detections[f]
        for t in tracker.update(det.boxes, det.scores, f, image=clip.frames[f], cut=cut):
            who = identity(t.box, clip.placed[f])
            assert who is not None, f"frame {f}: a track on no face"
            seen.setdefault(who, []).append((f, t.track_id))
        ended.update({tid: f for tid in tracker.ended_ids})
    return seen, cut_frames, ended


def switches(seen) -> int:
    """Changes of id along each identity, plus ids that named more than one identity."""
    owners: dict[int, set] = {}
    n = 0
    for who, seq in seen.items():
        ids = [tid for _, tid in seq]
        n += sum(a != b for a, b in zip(ids, ids[1:]))
        for tid in ids:
            owners.setdefault(tid, set()).add(who)
    return n + sum(len(o) - 1 for o in owners.values())


def test_the_clip_is_what_it_says(clip, detections):
    """Every pasted face is found where it is, in nearly every frame, so the tracking
    checks below test the tracker and not a detector that misses faces."""
    found = sum(identity(b, clip.placed[f]) is not None
                for f, d in enumerate(detections) for b in d.boxes)
    pasted = sum(len(p) for p in clip.placed)
    assert found >= 0.95 * pasted
    assert {w for p in clip.placed[CUT + 18:CUT + 22] for w in p} == {"c"}   # "d" is out


def test_every_frame_no_identity_switches(clip, detections):
    seen, cuts, ended = track(clip, detections, range(FRAMES))
    assert cuts == [CUT]
    assert switches(seen) == 0
    ids = {who: seq[0][1] for who, seq in seen.items()}
    assert sorted(ids) == ["a", "b", "c", "d"]
    assert sorted(ids.values()) == [1, 2, 3, 4]          # four faces, four tracks
    assert min(ids["c"], ids["d"]) > max(ids["a"], ids["b"])
    assert ended == {ids["a"]: CUT, ids["b"]: CUT}        # the cut ended shot A's tracks
    d_frames = [f for f, _ in seen["d"]]
    assert d_frames[0] == CUT and d_frames[-1] == FRAMES - 1   # "d" came back as itself


def test_without_appearance_the_returning_face_is_a_stranger(clip, detections):
    """What the appearance cue is for: by motion alone "d" comes back under a new id."""
    seen, _, _ = track(clip, detections, range(FRAMES), TrackerConfig(appearance=False))
    assert len({tid for _, tid in seen["d"]}) == 2


@pytest.mark.parametrize("indices", [range(0, FRAMES, 2), sorted(np.random.default_rng(0).choice(
    FRAMES, FRAMES * 2 // 3, replace=False).tolist())], ids=["every_other", "random_drops"])
def test_dropped_frames_no_identity_switches(clip, detections, indices):
    seen, cuts, _ = track(clip, detections, indices)
    assert len(cuts) == 1 and CUT <= cuts[0] < CUT + 3      # the first frame kept after it
    assert switches(seen) == 0
    assert len({tid for seq in seen.values() for _, tid in seq}) == 4


@pytest.mark.parametrize("every", [1, 2, 3])
def test_one_face_stream_stays_one_track(clip, detections, every):
    """Shot B with only "c"'s boxes kept: one face, one track, one face per processed
    frame, whatever is dropped."""
    indices = range(CUT, FRAMES, every)
    tracker = Tracker(TrackerConfig())
    ids = []
    for f in indices:
        keep = [i for i, b in enumerate(detections[f].boxes) if identity(b, clip.placed[f]) == "c"]
        tracks = tracker.update(detections[f].boxes[keep], detections[f].scores[keep], f, image=clip.frames[f])
        assert len(tracks) == 1, f
        ids.append(tracks[0].track_id)
    assert set(ids) == {1}
