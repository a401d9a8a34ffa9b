"""Whether a face crop's pixels can carry an expression: its light and its sharpness.

Three numbers per crop, computed on the network input the regressor already holds (a few
pooling and convolution operators on the batch, on the regressor's device), read by
:func:`workers.emotion_labels.label` (``too_dark``, ``too_blurred``):

* ``luminance``: mean grey level (0-255, Rec. 601 luma) of the face box;
* ``contrast``: the standard deviation of that grey level (0-255, RMS contrast): a face in
  the dark of a film has little of either, and no expression to read in it;
* ``sharpness``: how much of the face's detail survives at expression scale: the standard
  deviation of the Laplacian of the face box, divided by its contrast so that a dim face
  does not also read blurred.

All three look at the face box only (the crop's centre: the crop rule enlarges the box on
every side), shrunk by area averaging to ``SIDE`` pixels. At that resolution a face of
``SIDE`` source pixels or more gives the same numbers whatever its size (the crop warp
enlarges small faces, which would otherwise read blurred): what lowers ``sharpness`` is
defocus, motion and compression, not distance. Faces below ``SIDE`` px blur a little by
construction, which ``emotion.min_face_px`` (24) mostly covers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from workers.crops import CropRule

SIDE = 32                          # the face box is measured at this many pixels a side
LUMA = (0.299, 0.587, 0.114)       # Rec. 601 weights of R, G, B


def measure(x: "torch.Tensor", rule: "CropRule") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(luminance, contrast, sharpness), each (N,) float32, of normalised crops (N, 3, S, S)
    cut with ``rule`` (workers.crops.to_tensor's normalisation is undone here)."""
    import torch
    import torch.nn.functional as F

    n, _, s, _ = x.shape
    if n == 0:
        empty = np.zeros(0, np.float32)
        return empty, empty.copy(), empty.copy()
    x = x.float()
    mean = torch.tensor(rule.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(rule.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    margin = int(round(s * rule.enlarge / (1 + 2 * rule.enlarge)))   # the face box inside the crop
    face = ((x[:, :, margin:s - margin, margin:s - margin] * std + mean) * luma).sum(1, keepdim=True) * 255.0
    small = F.adaptive_avg_pool2d(face, SIDE)
    flat = small.flatten(1)
    luminance, contrast = flat.mean(1), flat.std(1)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    lap = F.conv2d(small, kernel.view(1, 1, 3, 3)).flatten(1)   # valid: no border of its own
    sharpness = lap.std(1) / contrast.clamp_min(1.0)
    lum, con, sharp = (v.cpu().numpy().astype(np.float32) for v in (luminance, contrast, sharpness))
    return lum, con, sharp
