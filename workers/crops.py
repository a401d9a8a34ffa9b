"""ExpNet's crop rule, batched: detection boxes -> square network inputs and back.

The rule (square of side max(w, h) about the box centre, enlarged on each side, zero
padding outside the frame) and the input normalisation belong to the trained network, so
they travel in its checkpoint metadata (key ``"crop"``) and are read back with
:meth:`CropRule.from_meta`; nothing else in the project should restate them.

Coordinates are continuous pixel coordinates in which pixel (i, j) covers
[i, i+1) x [j, j+1) -- the detector's box convention -- in both the image and the crop,
so the crop centre (S/2, S/2) maps exactly to the box centre.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

META_KEY = "crop"


@dataclass(frozen=True)
class CropRule:
    size: int = 128                 # network input side in pixels
    enlarge: float = 0.25           # added on each side, as a fraction of max(w, h)
    mean: tuple = (0.5, 0.5, 0.5)   # per RGB channel, on x / 255
    std: tuple = (0.5, 0.5, 0.5)

    @classmethod
    def from_meta(cls, meta: dict) -> "CropRule":
        """The rule stored in a checkpoint's metadata dict (under ``"crop"``)."""
        if META_KEY not in meta:
            raise ValueError(f"checkpoint metadata has no '{META_KEY}' entry (keys: {sorted(meta)})")
        entry = meta[META_KEY]
        known = {f.name for f in fields(cls)}
        if set(entry) != known:
            raise ValueError(f"checkpoint '{META_KEY}' metadata must have exactly the keys "
                             f"{sorted(known)}, got {sorted(entry)}")
        return cls(size=int(entry["size"]), enlarge=float(entry["enlarge"]),
                   mean=tuple(float(v) for v in entry["mean"]),
                   std=tuple(float(v) for v in entry["std"]))

    def to_meta(self) -> dict:
        """``{"crop": {...}}``, JSON-ready, to merge into a checkpoint's metadata."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return {META_KEY: d}


def crop_affines(boxes: np.ndarray, rule: CropRule) -> np.ndarray:
    """(N, 2, 3) affines taking crop coordinates to image coordinates for (N, 4) boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1) * (1 + 2 * rule.enlarge)
    scale = side / rule.size
    affines = np.zeros((len(boxes), 2, 3))
    affines[:, 0, 0] = affines[:, 1, 1] = scale
    affines[:, :, 2] = centre - side[:, None] / 2
    return affines


def crop_faces(image: np.ndarray, boxes: np.ndarray, rule: CropRule) -> tuple[np.ndarray, np.ndarray]:
    """Crops (N, S, S, 3) uint8 of ``image`` for (N, 4) x1, y1, x2, y2 boxes, and their affines.

    Returns ``(crops, affines)``; ``affines[n]`` maps crop coordinates of crop n to image
    coordinates (see :func:`crop_to_image`).
    """
    affines = crop_affines(boxes, rule)
    crops = np.empty((len(affines), rule.size, rule.size, 3), np.uint8)
    for crop, a in zip(crops, affines):
        # warpAffine samples at pixel centres (integers), our coordinates put them at +0.5:
        # shift in and out of the centre convention around the affine.
        m = a.copy()
        m[:, 2] += 0.5 * a[[0, 1], [0, 1]] - 0.5
        cv2.warpAffine(image, m, (rule.size, rule.size), dst=crop,
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crops, affines


def to_tensor(crops: np.ndarray, rule: CropRule, device: "str | torch.device" = "cpu") -> torch.Tensor:
    """(N, S, S, 3) uint8 crops -> (N, 3, S, S) float32 on ``device``, normalised as
    ``(x/255 - mean)/std``.

    The uint8 crops travel to the device first and are normalised there: on a GPU that
    moves a quarter of the bytes and takes the per-pixel arithmetic off the replica's one
    CPU thread, which otherwise caps a batched GPU replica. torch is imported here, not
    with the module: the crop rule is used by the processes that host streams, which
    never build tensors (and should not load torch)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(rule.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(rule.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std).contiguous()


def crop_to_image(points: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Map (N, K, 2) points in crop coordinates to image coordinates with (N, 2, 3) affines."""
    points = np.asarray(points, dtype=np.float64)
    return points @ affines[:, :, :2].transpose(0, 2, 1) + affines[:, None, :, 2]
