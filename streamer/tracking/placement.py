"""Where a tracked face is, from what the regressor said about it: its 68 landmarks → a
box in the detector's convention.

Between detector runs each track's next crop is cut from this box (fed to the tracker
as a measurement), so the crop must frame the face as the detector's box would: the crop
rule and the network were made for detector boxes. RetinaFace's box reaches above the
brows and is taller than wide; the landmarks stop at the brows. The relation is fitted
once, on real frames, as a centre offset and two sides in units of the landmarks' extent
(the larger of their width and height, stable under yaw and roll).

Measured by ``bench/placement_fit.py`` (RetinaFace boxes vs the shipped regressor's
landmarks on crops of those boxes; every 5th of the first 300 frames of lp_d11, lp_s32,
vr_4, lp_d0, vr_1 and st_wda_kh; 204 faces, boxes 190–256 px, yaw −9°..+18°): medians
below; the rule places the detector's box with a median coordinate error of 7.5 px,
3.8 % of its side (IoU median 0.88, 5th percentile 0.69).
"""
from __future__ import annotations

import numpy as np

from workers.crops import crop_to_image

CENTRE_OFFSET = (-0.009, -0.147)   # (box centre − landmark centre) / extent: x, y
BOX_SIDES = (0.975, 1.349)         # box width, height / extent


def box_from_landmarks(points: np.ndarray) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 boxes for (N, 68, 2) landmarks in image pixels."""
    points = np.asarray(points, np.float64).reshape(-1, 68, 2)
    lo, hi = points.min(axis=1), points.max(axis=1)
    extent = (hi - lo).max(axis=1, keepdims=True)
    centre = (lo + hi) / 2 + np.asarray(CENTRE_OFFSET) * extent
    half = np.asarray(BOX_SIDES) * extent / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def boxes_in_image(landmarks: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """(N, 4) image boxes for landmarks (N, 68, 2) in the pixels of crops cut with ``affines``."""
    return box_from_landmarks(crop_to_image(landmarks, affines))


def box_relation(target: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(dx, dy, log rw, log rh): ``target`` relative to ``box``, centre shift in units of
    box's sides and log side ratios; :func:`apply_relation` puts it back on another box."""
    tw, th = target[2] - target[0], target[3] - target[1]
    w, h = max(box[2] - box[0], 1e-6), max(box[3] - box[1], 1e-6)
    dx = ((target[0] + target[2]) - (box[0] + box[2])) / 2 / w
    dy = ((target[1] + target[3]) - (box[1] + box[3])) / 2 / h
    return np.array([dx, dy, np.log(max(tw, 1e-6) / w), np.log(max(th, 1e-6) / h)])


def apply_relation(relation: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box that stands to ``box`` as the target of :func:`box_relation` stood to its box."""
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2 + relation[0] * w, (box[1] + box[3]) / 2 + relation[1] * h
    w, h = w * np.exp(relation[2]), h * np.exp(relation[3])
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
