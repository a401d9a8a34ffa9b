"""The second teacher: 3DDFA_V2's MobileNet (workers/mobilenet.py) read as a pose and
68-landmark labeller.

Why a second teacher: MediaPipe finds about half of the faces turned beyond 60 degrees;
3DDFA_V2 gives a pose for every crop it is handed (it has no detector of its own), so it
labels the profiles that MediaPipe misses. Its pitch and roll are worse than MediaPipe's,
which is why the label builder (training/wild_labels.py) prefers MediaPipe where
it has a face and records which teacher each label came from.

What is reproduced from 3DDFA_V2 (``../shared/data/teachers/3ddfa_v2/README.md``):

* the ROI rule: a square of 1.58 x mean(box w, h) around the box centre moved down by
  0.14 x that mean (``roi_from_box``); the network saw faces framed this way in training;
* input: the crop resized to 120x120, BGR, ``(x - 127.5) / 128``;
* output: ``param = fc_param(x) * std + mean``; ``param[:12]`` is a 3x4 affine camera whose
  rows, normalised, give the head rotation, and whose row norm is the scale (crop pixels
  per BFM unit); ``fc_lm`` gives 68 landmarks as x0..x67 then y0..y67 in [-1, 1] of the
  120-pixel crop (measured against AFLW's hand-placed points: pixel = (v + 1) * 60).

Pose convention: with R the normalised rows of P (r3 = r1 x r2), the README's conversion
(yaw = asin R20 kept, pitch = atan2(R21, R22) and roll = atan2(R10, R00) negated) is
exactly ``workers.pose.euler_from_matrix(R)``: R is already a rotation in this project's
frame, so it is used as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from workers.mobilenet import DEFAULT_SOURCE, INPUT_SIZE, load_3ddfa
from workers.pose import euler_from_matrix, matrix_from_euler

ROI_SIDE = 1.58      # ROI side / mean(box w, h)
ROI_SHIFT = 0.14     # ROI centre below the box centre, / mean(box w, h)


def roi_from_box(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1 y1 x2 y2 face boxes -> (N, 4) square ROIs, 3DDFA_V2's
    ``parse_roi_box_from_bbox`` (without its rounding of the side to whole pixels)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    mean = ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2 + ROI_SHIFT * mean
    half = ROI_SIDE * mean / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], 1)


def crop_rois(image: np.ndarray, rois: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of square ``rois`` (zero outside the image), bilinear.

    Coordinates are continuous (pixel i covers [i, i+1)), as in workers/crops.py, so a
    crop point u maps back to ``roi_x0 + u * side / size``."""
    rois = np.asarray(rois, np.float64).reshape(-1, 4)
    out = np.empty((len(rois), size, size, 3), np.uint8)
    for crop, (x0, y0, x1, _) in zip(out, rois):
        s = (x1 - x0) / size
        m = np.array([[s, 0, x0 + 0.5 * s - 0.5], [0, s, y0 + 0.5 * s - 0.5]])
        cv2.warpAffine(image, m, (size, size), dst=crop, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return out


def to_input(crops_rgb: np.ndarray) -> torch.Tensor:
    """(N, 120, 120, 3) RGB uint8 -> (N, 3, 120, 120) float, BGR, (x - 127.5) / 128."""
    bgr = np.ascontiguousarray(np.asarray(crops_rgb)[..., ::-1])
    return torch.from_numpy(bgr).permute(0, 3, 1, 2).float().sub_(127.5).div_(128.0)


def pose_from_param(param: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 62) de-normalised parameters -> rotation (N, 3, 3) in this project's frame,
    AFLW (yaw, pitch, roll) degrees (N, 3), and scale (N,) crop pixels per BFM unit."""
    P = np.asarray(param, np.float64)[:, :12].reshape(-1, 3, 4)
    n1 = np.linalg.norm(P[:, 0, :3], axis=1)
    n2 = np.linalg.norm(P[:, 1, :3], axis=1)
    r1 = P[:, 0, :3] / n1[:, None]
    r2 = P[:, 1, :3] / n2[:, None]
    R = np.stack([r1, r2, np.cross(r1, r2)], 1)
    euler = np.array([euler_from_matrix(r) for r in R]).reshape(-1, 3)
    # r1 and r2 are not exactly orthogonal: the label is the rotation of these angles
    rot = np.stack([matrix_from_euler(*e) for e in euler]) if len(euler) else np.zeros((0, 3, 3))
    return rot, euler, (n1 + n2) / 2


@dataclass
class Result3DDFA:
    """Per face: ``landmarks`` and ``scale`` are in the pixels of the image the ROIs were
    cut from (of the crop itself for ``predict_crops``)."""

    param: np.ndarray      # (N, 62) de-normalised 3DMM parameters
    rotation: np.ndarray   # (N, 3, 3) this project's frame
    euler: np.ndarray      # (N, 3) AFLW yaw, pitch, roll, degrees
    scale: np.ndarray      # (N,) pixels per BFM unit
    landmarks: np.ndarray  # (N, 68, 2) iBUG-68, x y pixels


class Teacher3DDFA:
    """3DDFA_V2 MobileNet-0.5 on face crops or on image ROIs, batched, no gradients."""

    def __init__(self, source: Path | str | None = None, batch_size: int = 64):
        src = Path(source) if source is not None else DEFAULT_SOURCE
        self.net = load_3ddfa(src)
        stats = np.load((src if src.is_dir() else src.parent) / "param_mean_std_62d_120x120.npz")
        self.mean = stats["mean"].astype(np.float64)
        self.std = stats["std"].astype(np.float64)
        self.batch_size = batch_size

    def predict_crops(self, crops_rgb: np.ndarray) -> Result3DDFA:
        """Crops already framed by the ROI rule (for example AFLW's 3DDFA-style crops),
        any square size: resized to 120 (bilinear); landmarks in the crops' own pixels."""
        crops_rgb = np.asarray(crops_rgb)
        side = crops_rgb.shape[1]
        if side != INPUT_SIZE:
            crops_rgb = np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
                                  for c in crops_rgb])
        params, lms = [], []
        with torch.no_grad():
            for i in range(0, len(crops_rgb), self.batch_size):
                p, lm = self.net(to_input(crops_rgb[i:i + self.batch_size]))
                params.append(p.double().numpy())
                lms.append(lm.double().numpy())
        param = np.concatenate(params) * self.std + self.mean if params else np.zeros((0, 62))
        lm = np.concatenate(lms) if lms else np.zeros((0, 136))
        lm = (lm.reshape(-1, 2, 68).transpose(0, 2, 1) + 1) * (INPUT_SIZE / 2) * (side / INPUT_SIZE)
        rot, euler, scale = pose_from_param(param)
        return Result3DDFA(param, rot, euler, scale * side / INPUT_SIZE, lm)

    def predict_rois(self, image: np.ndarray, rois: np.ndarray) -> Result3DDFA:
        """Faces of one RGB image in square ``rois`` (see ``roi_from_box``), in image pixels."""
        rois = np.asarray(rois, np.float64).reshape(-1, 4)
        return self.predict_each([image] * len(rois), rois)

    def predict_each(self, images: np.ndarray | list[np.ndarray], rois: np.ndarray) -> Result3DDFA:
        """One face per image: ``images[i]`` cut at ``rois[i]``; results in image pixels."""
        rois = np.asarray(rois, np.float64).reshape(-1, 4)
        crops = np.stack([crop_rois(im, roi)[0] for im, roi in zip(images, rois)]) if len(rois) \
            else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        r = self.predict_crops(crops)
        k = (rois[:, 2] - rois[:, 0]) / INPUT_SIZE
        r.landmarks = r.landmarks * k[:, None, None] + rois[:, None, :2]
        r.scale = r.scale * k
        return r

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> Result3DDFA:
        """Faces of one RGB image given 3DDFA-style face boxes (the ROI rule is applied)."""
        return self.predict_rois(image, roi_from_box(boxes))
