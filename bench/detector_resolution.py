"""Small faces in large frames: what ``detector.max_side`` finds and what it costs.

The detector sees each frame shrunk so its longer side is at most ``detector.max_side``
(640 by default): a 1080p frame is shown at a third of its size, so a face 60 px tall in
the source is 20 px to RetinaFace, at the edge of what it finds (docs/accuracy.md,
"Small faces"). Raising ``max_side`` finds more of a crowd's small faces at a cost that
grows with the pixels. This bench reads frames of one clip (default the 1080p crowd
clip), runs the detector at each ``max_side`` on the same frames, and prints faces per
frame, the CPU time per frame (this thread's, so a busy machine does not distort it) and
both as ratios to the first setting, and the median size (source pixels) of the faces that
only the larger setting finds, matched to the first setting's by box overlap (IoU 0.3).
With track-driven detection (``detector.every_frames``, 10) a detection is paid once per
that many frames, so the per-frame cost of a setting is its time divided by it.

``--tiles`` measures the tile rotation instead (``detector.tiles``,
:mod:`streamer.tracking.tiles`) as a stream runs it, over consecutive frames: the
follower with the shipped regressor placing faces between detector runs (its output used
2 frames late, as in the session), the detector seeing the whole frame at ``max_side``
and, in turn, one tile. Per variant (tiles off, as before; tiles on) it prints the share
of the reference's faces of ``--min-face`` px or more (the detector at ``--reference``
on every frame) that a reported face box covers (IoU >= 0.4: a followed box is placed
from landmarks), over all frames and over the last pass (``--passes``: the clip played
forth and back that many times, the steady state of a camera watching a crowd) and
over the frames the detector ran on (what it found there and the tracks it could not have
seen), and the detection CPU (this thread's: shrink, tiles, detect, merge) per frame as a
ratio to the first variant: ``detector.min_face_px`` counted in the shrunk frame's pixels,
as the session did before (faces under 60 px of a 1080p frame dropped).

    .venv/bin/python bench/detector_resolution.py --tiles [--every 10] [--passes 3] [--reference 1920]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402
from streamer.config import DetectorConfig, SourceConfig  # noqa: E402
from streamer.pipeline.session import detector_input  # noqa: E402
from streamer.sources.files import open_source  # noqa: E402
from workers.boxes import iou_matrix  # noqa: E402
from workers.detector import FaceDetector  # noqa: E402

CLIP = REPO.parent / "shared" / "data" / "real" / "video" / "crowd_1080p.mp4"


def frames_of(video: Path, count: int, step: int) -> list[np.ndarray]:
    """Every ``step``-th decoded frame (RGB), ``count`` of them at most."""
    out = []
    for i, frame in enumerate(open_source(str(video), SourceConfig())):
        if i % step == 0:
            out.append(frame.image)
        if len(out) >= count:
            break
    return out


def detect_all(frames: list[np.ndarray], max_side: int) -> tuple[list, float]:
    """Detections per frame (boxes in source pixels) and CPU seconds per frame, shrinking each
    frame as the session does (session.detector_input) and detecting one frame per call;
    ``detector.min_face_px`` counts source pixels, as in the session."""
    cfg = replace(DetectorConfig(), max_side=max_side, batch_size=1)
    detector = FaceDetector(replace(cfg, min_face_px=0), threads=1)
    detector.detect([detector_input(frames[0], max_side)[0]])       # warm-up
    found, cpu = [], 0.0
    for image in frames:
        t = time.thread_time()
        small, scale = detector_input(image, max_side)
        boxes = detector.detect([small])[0].boxes / scale
        boxes = boxes[np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= cfg.min_face_px]
        cpu += time.thread_time() - t
        found.append(boxes)
    return found, cpu / len(frames)


def reference_faces(frames: list[np.ndarray], max_side: int, min_face: float) -> list[np.ndarray]:
    """Per frame, the boxes (source px) of the faces the ``max_side`` detector finds there
    whose shorter side is at least ``min_face``."""
    detector = FaceDetector(replace(DetectorConfig(), max_side=max_side, batch_size=1), threads=1)
    out = []
    for image in frames:
        small, scale = detector_input(image, max_side)
        boxes = detector.detect([small])[0].boxes / scale
        out.append(boxes[np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= min_face])
    return out


def follow_with_tiles(frames: list[np.ndarray], cfg: DetectorConfig, every: int,
                      as_before: bool = False) -> tuple[list, float, list[int]]:
    """Track-driven detection with ``cfg``'s regions as the session runs it: per frame the
    reported boxes, the detection CPU seconds per frame, and the frames detected.
    ``as_before``: ``min_face_px`` counted in the pixels of the shrunk frame, as the
    session did until 2026-12-07 (a third of 1080p: faces under 60 px dropped)."""
    from collections import deque

    from streamer.config import TrackerConfig
    from streamer.sources.frames import Frame
    from streamer.tracking.follow import Follower
    from streamer.tracking.tiles import TileRotation
    from workers.crops import CropRule, crop_faces, to_tensor
    from workers.regressor import Regressor

    regressor = Regressor.load(device="cpu")
    rule = CropRule.from_meta(regressor.meta)
    probe = regressor.presence
    detector = FaceDetector(replace(cfg, batch_size=2, min_face_px=cfg.min_face_px if as_before else 0), threads=1)
    min_face = 0 if as_before else cfg.min_face_px
    follower = Follower(TrackerConfig(), every, None if probe is None else probe.threshold,
                        regions=TileRotation(cfg))
    late: deque[tuple] = deque()
    out, cpu, runs = [], 0.0, []
    for f, image in enumerate(frames):
        while len(late) > 2:      # as streamer.pipeline.session._FEEDBACK_LAG
            follower.observe(*late.popleft())
        frame = Frame(f, f / 25.0, image)
        plan = follower.plan(frame)
        if plan.detect:
            t = time.thread_time()
            det = plan.regions.merge(detector.detect(plan.regions.inputs(image)), cfg.nms_threshold, min_face)
            cpu += time.thread_time() - t
            runs.append(f)
            tracks = follower.track(frame, plan.cut, det.boxes, det.scores, plan.regions)
        else:
            tracks = follower.track(frame, plan.cut)
        out.append(np.array([tr.box for tr in tracks], np.float64).reshape(-1, 4))
        if tracks:
            crops, affines = crop_faces(image, out[-1], rule)
            pred = regressor(to_tensor(crops, rule))
            late.append((f, [tr.track_id for tr in tracks], pred.landmarks, affines, pred.presence))
    return out, cpu / len(frames), runs


def recall(reference: list[np.ndarray], found: list[np.ndarray], iou: float = 0.4) -> float:
    """Share of the reference boxes that a found box of the same frame overlaps by ``iou``."""
    hit = total = 0
    for ref, got in zip(reference, found):
        total += len(ref)
        if len(ref) and len(got):
            hit += int((iou_matrix(ref, got).max(1) >= iou).sum())
    return hit / max(total, 1)


def tiles_main(args: argparse.Namespace) -> int:
    from streamer.config import TileMode
    from streamer.tracking.tiles import tile_grid

    clip = frames_of(args.video, 10**6, 1)
    if not clip:
        print(f"{args.video}: no frames", file=sys.stderr)
        return 1
    frames = list(clip)
    for k in range(1, args.passes):     # forth and back: no jump a cut detector would see
        frames += clip[::-1][1:] if k % 2 else clip[1:]
    h, w = clip[0].shape[:2]
    ref_clip = reference_faces(clip, args.reference, args.min_face)
    ref = list(ref_clip)
    for k in range(1, args.passes):
        ref += ref_clip[::-1][1:] if k % 2 else ref_clip[1:]
    last = len(frames) - len(clip)
    base_cfg = replace(DetectorConfig(), max_side=int(args.max_side.split(",")[0]))
    print(f"{args.video.name}: {len(clip)} frames of {w}x{h}, played {args.passes}× forth and back "
          f"({len(frames)} frames), every_frames {args.every}; reference: max_side {args.reference}, "
          f"faces >= {args.min_face:.0f} px, {np.mean([len(r) for r in ref_clip]):.1f} a frame; {machine()}")
    print("| variant | tiles in a round | detector runs | recall, all frames | recall, last pass "
          "| recall, frames detected | detection CPU ms / frame | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    base_cpu = None
    off = replace(base_cfg, tiles=TileMode.OFF)
    variants = [("min_face_px in shrunk pixels (before), tiles off", off, True), ("tiles off", off, False)]
    variants += [(f"tiles on, tile_side {s}, tile_max_side {t}",
                  replace(base_cfg, tiles=TileMode.ON, tile_side=s, tile_max_side=t), False)
                 for s in args.tile_side for t in args.tile_max_side]
    for name, cfg, before in variants:
        found, cpu, runs = follow_with_tiles(frames, cfg, args.every, before)
        base_cpu = base_cpu or cpu
        on_runs = recall([ref[f] for f in runs], [found[f] for f in runs])
        print(f"| {name} | {len(tile_grid(w, h, cfg))} | {len(runs)} | {recall(ref, found):.3f} "
              f"| {recall(ref[last:], found[last:]):.3f} | {on_runs:.3f} | {cpu * 1000:.2f} | {cpu / base_cpu:.2f} |",
              flush=True)
    return 0


def only_here(base: list, other: list) -> np.ndarray:
    """Shorter sides (source px) of the boxes in ``other`` that no box of ``base`` matches."""
    sides = []
    for a, b in zip(base, other):
        if not len(b):
            continue
        unmatched = np.ones(len(b), bool) if not len(a) else iou_matrix(b, a).max(1) < 0.3
        sides.extend(np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])[unmatched])
    return np.asarray(sides)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=CLIP)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--step", type=int, default=10, help="read every N-th frame")
    ap.add_argument("--max-side", default="640,960,1280,1920")
    ap.add_argument("--tiles", action="store_true", help="measure the tile rotation (see above)")
    ap.add_argument("--every", type=int, default=10, help="--tiles: detector.every_frames")
    ap.add_argument("--passes", type=int, default=3, help="--tiles: the clip played forth and back")
    ap.add_argument("--reference", type=int, default=1920, help="--tiles: the reference's max_side")
    ap.add_argument("--min-face", type=float, default=40.0, help="--tiles: reference faces this large (px)")
    ap.add_argument("--tile-side", type=int, nargs="+", default=[DetectorConfig().tile_side],
                    help="--tiles: detector.tile_side")
    ap.add_argument("--tile-max-side", type=int, nargs="+", default=[DetectorConfig().tile_max_side],
                    help="--tiles: detector.tile_max_side")
    args = ap.parse_args(argv)
    if args.tiles:
        return tiles_main(args)
    frames = frames_of(args.video, args.frames, args.step)
    if not frames:
        print(f"{args.video}: no frames", file=sys.stderr)
        return 1
    h, w = frames[0].shape[:2]
    print(f"{args.video.name}: {len(frames)} frames of {w}x{h}, one thread; {machine()}")
    print("| max_side | faces / frame | ratio | CPU ms / frame | ratio | found only here: faces, median side px |")
    print("|---|---|---|---|---|---|")
    sides = [int(s) for s in args.max_side.split(",")]
    base = None
    for side in sides:
        found, cpu = detect_all(frames, side)
        faces = float(np.mean([len(f) for f in found]))
        if base is None:
            base = (found, faces, cpu)
        extra = only_here(base[0], found)
        extra_s = "-" if side == sides[0] else f"{len(extra)}, {np.median(extra):.0f}" if len(extra) else "0"
        print(f"| {side} | {faces:.1f} | {faces / base[1]:.2f} | {cpu * 1000:.0f} | {cpu / base[2]:.1f} | {extra_s} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
