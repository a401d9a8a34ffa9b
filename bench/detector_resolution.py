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

    .venv/bin/python bench/detector_resolution.py [--video CLIP] [--frames 12] [--max-side 640,960,1280,1920]
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
    frame as the session does (session.detector_input) and detecting one frame per call."""
    cfg = replace(DetectorConfig(), max_side=max_side, batch_size=1)
    detector = FaceDetector(cfg, threads=1)
    detector.detect([detector_input(frames[0], max_side)[0]])       # warm-up
    found, cpu = [], 0.0
    for image in frames:
        t = time.thread_time()
        small, scale = detector_input(image, max_side)
        det = detector.detect([small])[0]
        cpu += time.thread_time() - t
        found.append(det.boxes / scale)
    return found, cpu / len(frames)


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
    args = ap.parse_args(argv)
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
