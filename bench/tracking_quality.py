"""Tracking quality on the real clips: what the tracker reports against
every-frame detection on the crowd clip, and hard cuts on the real clips.

1. Crowd (``crowd_1080p.mp4``, many small faces): the detector runs on every frame (the
   reference). For each variant — the tracker without its appearance cue, and
   track-driven detection with the detector on the schedule ``detector.every_frames`` =
   N (``--every``): :class:`streamer.tracking.follow.Follower` with the shipped regressor placing
   faces between detector runs from its landmarks, its output used 2 frames late as in
   the session, presence requests honoured — it prints the recall of the reference boxes
   on all frames (a tracked box with IoU >= 0.5), the number of track ids, identity
   switches against the reference tracks (a reference track's faces reported under more
   than one id, or one id on faces of two reference tracks), and the share of frames the
   detector ran on.
2. Cuts: the cut detector over every shared real clip (none has a shot cut: every cut
   found there is a false one), then over the clips joined end to end at 1280x720 (known
   hard cuts between them), with the tracker: a cut must be found where it is, and end
   every track that was alive before it. Prints also the detector's cost per 720p frame.

    .venv/bin/python bench/tracking_quality.py [--every 5 10] [--frames-per-clip 20]
"""
from __future__ import annotations

import argparse
import glob
import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine
from streamer.config import DetectorConfig, TrackerConfig
from streamer.sources.frames import Frame
from streamer.tracking.cuts import CutDetector
from streamer.tracking.follow import Follower
from streamer.tracking.tracker import Tracker
from workers.boxes import iou_matrix
from workers.crops import CropRule, crop_faces, to_tensor
from workers.detector import FaceDetector
from workers.regressor import Regressor

FEEDBACK_LAG = 2   # frames, as streamer.pipeline.session._FEEDBACK_LAG

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "video"


def decode(path: Path, limit: int | None = None, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        frames = []
        for f in c.decode(video=0):
            image = f.to_ndarray(format="rgb24")
            frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA) if size else image)
            if limit and len(frames) == limit:
                break
    return frames


def run_tracker(frames, dets, indices, cfg: TrackerConfig) -> dict[int, list[tuple[np.ndarray, int]]]:
    """frame -> [(box, track id)] for the processed ``indices``."""
    tracker, out = Tracker(cfg), {}
    for f in indices:
        tracks = tracker.update(dets[f].boxes, dets[f].scores, f, image=frames[f])
        out[f] = [(t.box, t.track_id) for t in tracks]
    return out


def run_follower(frames, dets, every: int, cfg: TrackerConfig, regressor: Regressor):
    """Track-driven detection as the session runs it: frame -> [(box, track id)], and the
    number of frames the detector ran on (``dets`` holds every frame's; only the
    scheduled ones are used)."""
    rule = CropRule.from_meta(regressor.meta)
    probe = regressor.presence
    follower = Follower(cfg, every, None if probe is None else probe.threshold)
    out, late, detected = {}, deque(), 0
    for f, image in enumerate(frames):
        while len(late) > FEEDBACK_LAG:
            follower.observe(*late.popleft())
        frame = Frame(f, f / 25.0, image)
        plan = follower.plan(frame)
        cut, detect = plan.cut, plan.detect
        detected += detect
        tracks = (follower.track(frame, cut, dets[f].boxes, dets[f].scores) if detect
                  else follower.track(frame, cut))
        out[f] = [(t.box, t.track_id) for t in tracks]
        if tracks:
            crops, affines = crop_faces(image, np.stack([t.box for t in tracks]), rule)
            pred = regressor(to_tensor(crops, rule))
            late.append((f, [t.track_id for t in tracks], pred.landmarks, affines, pred.presence))
    return out, detected


def compare(reference, variant, n_frames: int) -> dict:
    """Recall of the reference's boxes by the variant's, and identity switches against
    the reference's tracks, over all frames."""
    found = total = 0
    ref_to_ids: dict[int, list[int]] = {}
    id_to_refs: dict[int, set[int]] = {}
    for f in range(n_frames):
        ref = reference.get(f, [])
        got = variant.get(f, [])
        total += len(ref)
        if not ref or not got:
            continue
        iou = iou_matrix(np.stack([b for b, _ in ref]), np.stack([b for b, _ in got]))
        for i, (_, rid) in enumerate(ref):
            j = int(iou[i].argmax())
            if iou[i, j] >= 0.5:
                found += 1
                ref_to_ids.setdefault(rid, []).append(got[j][1])
                id_to_refs.setdefault(got[j][1], set()).add(rid)
    switches = sum(sum(a != b for a, b in zip(ids, ids[1:])) for ids in ref_to_ids.values())
    switches += sum(len(r) - 1 for r in id_to_refs.values())
    return {"recall": found / max(total, 1), "switches": switches}


def crowd(everies: list[int]) -> None:
    frames = decode(REAL / "crowd_1080p.mp4")
    dets = FaceDetector(DetectorConfig()).detect(frames)
    n = len(frames)
    base = TrackerConfig()
    reference = run_tracker(frames, dets, range(n), base)
    ref_ids = {tid for v in reference.values() for _, tid in v}
    print(f"crowd_1080p.mp4: {n} frames, {sum(len(d) for d in dets)} detections "
          f"({np.mean([len(d) for d in dets]):.1f} a frame); reference (every frame, appearance): "
          f"{sum(len(v) for v in reference.values())} tracked boxes, {len(ref_ids)} track ids")
    print(f"{'variant':34s} {'recall':>7s} {'track ids':>9s} {'switches':>8s} {'detected':>8s}")
    regressor = Regressor.load(device="cpu")
    variants = [("every frame, no appearance", replace(base, appearance=False), None)]
    variants += [(f"track-driven, every_frames {k}", base, k) for k in everies]
    for name, cfg, k in variants:
        if k is None:
            out, detected = run_tracker(frames, dets, range(n), cfg), n
        else:
            out, detected = run_follower(frames, dets, k, cfg, regressor)
        ids = {tid for v in out.values() for _, tid in v}
        c = compare(reference, out, n)
        print(f"{name:34s} {c['recall']:7.3f} {len(ids):9d} {c['switches']:8d} {detected / n:8.0%}")


def cuts(frames_per_clip: int) -> None:
    clips = sorted(glob.glob(str(REAL / "*.mp4")))
    false, cost, timed = 0, 0.0, 0
    for p in clips:
        detector = CutDetector()
        frames = decode(Path(p))
        found = [i for i, f in enumerate(frames) if detector.update(f)]
        false += len(found)
        print(f"  {Path(p).name:20s} {len(frames):5d} frames {frames[0].shape[1]}x{frames[0].shape[0]}: cuts {found}")
    print(f"real clips: {len(clips)}, cuts found {false} (none is in them)")

    size = (1280, 720)
    joined, starts = [], []
    for p in clips:
        starts.append(len(joined))
        joined += decode(Path(p), frames_per_clip, size)
    expected = starts[1:]
    detector, tracker = CutDetector(), Tracker()
    det = FaceDetector(DetectorConfig())
    found, alive, unended = [], set(), 0
    for start in range(0, len(joined), 8):
        batch = joined[start:start + 8]
        for k, (image, d) in enumerate(zip(batch, det.detect(batch))):
            f = start + k
            t0 = time.perf_counter()
            is_cut = detector.update(image)
            cost += time.perf_counter() - t0
            timed += 1
            if is_cut:
                found.append(f)
            tracks = tracker.update(d.boxes, d.scores, f, image=image, cut=is_cut)
            if is_cut:
                unended += len(alive - set(tracker.ended_ids))
                alive = set()
            alive = (alive - set(tracker.ended_ids)) | {t.track_id for t in tracks}
    hits = sorted(set(found) & set(expected))
    print(f"joined clips ({len(clips)} x {frames_per_clip} frames at 1280x720): {len(expected)} hard cuts, "
          f"found {len(hits)}, missed {len(expected) - len(hits)}, false {len(set(found) - set(expected))}; "
          f"tracks alive across a found cut without ending: {unended}")
    print(f"cut detector: {cost / timed * 1e3:.3f} ms a 1280x720 frame (mean of {timed})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, nargs="*", default=[5, 10],
                    help="track-driven detection with detector.every_frames N")
    ap.add_argument("--frames-per-clip", type=int, default=20)
    ap.add_argument("--no-cuts", action="store_true", help="only the crowd clip")
    args = ap.parse_args()
    print(machine())
    crowd(args.every)
    if not args.no_cuts:
        cuts(args.frames_per_clip)


if __name__ == "__main__":
    main()
