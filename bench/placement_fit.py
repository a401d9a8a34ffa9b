"""Fit the relation landmark extent → detector box that track-driven detection places
crops with (the constants of ``streamer/tracking/placement.py``), on real frames.

Every 5th of the first 300 frames of each clip: RetinaFace's boxes, the shipped
regressor's 68 landmarks on crops cut from those boxes, mapped to image pixels. With
``ext`` = max(landmark width, landmark height) and the landmarks' bounding-box centre, it
prints the medians of (box centre − landmark centre) / ext and box side / ext, and how
well the fitted rule places the detector's box (pixels, IoU).

    .venv/bin/python bench/placement_fit.py [CLIP ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine
from streamer.config import DetectorConfig
from streamer.tracking.placement import box_from_landmarks
from workers.boxes import iou_matrix
from workers.crops import CropRule, crop_faces, crop_to_image, to_tensor
from workers.detector import FaceDetector
from workers.regressor import Regressor

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "video"
CLIPS = ("lp_d11.mp4", "lp_s32.mp4", "vr_4.mp4", "lp_d0.mp4", "vr_1.mp4", "st_wda_kh.mp4")


def samples(clips: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Detector boxes (N, 4) and the regressor's landmarks in image pixels (N, 68, 2)."""
    torch.set_num_threads(1)
    detector, regressor = FaceDetector(DetectorConfig()), Regressor.load(device="cpu")
    rule = CropRule.from_meta(regressor.meta)
    boxes, landmarks = [], []
    for name in clips:
        with av.open(str(REAL / name)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= 300:
                    break
                if i % 5:
                    continue
                image = frame.to_ndarray(format="rgb24")
                found = detector.detect([image])[0]
                if not len(found):
                    continue
                crops, affines = crop_faces(image, found.boxes, rule)
                boxes.append(found.boxes)
                landmarks.append(crop_to_image(regressor(to_tensor(crops, rule)).landmarks, affines))
    return np.concatenate(boxes).astype(np.float64), np.concatenate(landmarks)


def main() -> None:
    clips = sys.argv[1:] or list(CLIPS)
    info = machine()
    print(f"machine: {info['nproc']} CPUs, commit {info['commit']}; clips: {', '.join(clips)}")
    boxes, landmarks = samples(clips)
    lo, hi = landmarks.min(1), landmarks.max(1)
    ext = (hi - lo).max(1)
    offset = ((boxes[:, :2] + boxes[:, 2:]) / 2 - (lo + hi) / 2) / ext[:, None]
    side = (boxes[:, 2:] - boxes[:, :2]) / ext[:, None]
    print(f"{len(boxes)} faces; median centre offset / ext: x {np.median(offset[:, 0]):+.4f} "
          f"y {np.median(offset[:, 1]):+.4f}; median side / ext: w {np.median(side[:, 0]):.4f} "
          f"h {np.median(side[:, 1]):.4f}")
    placed = box_from_landmarks(landmarks)
    err = np.abs(placed - boxes)
    iou = np.diag(iou_matrix(placed, boxes))
    print(f"with streamer.tracking.placement's constants: |error| median {np.median(err):.1f} px "
          f"({100 * np.median(err.mean(1) / (boxes[:, 2] - boxes[:, 0])):.1f} % of the box side), "
          f"IoU median {np.median(iou):.3f}, 5th percentile {np.percentile(iou, 5):.3f}")


if __name__ == "__main__":
    main()
