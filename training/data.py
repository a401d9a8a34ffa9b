"""Training samples: one array layout for teacher-labelled real faces and renders.

Every sample is a *context crop* (the inference crop enlarged by CTX_FACTOR, 160 px) and
labels in context-crop pixels. ``augment`` then cuts the network input out of it with a
random box jitter, in-plane rotation and mirror — the same variation a detector and a
tilted head produce — and moves every label with the pixels:

* in-plane rotation by δ (clockwise positive) adds δ to roll exactly, because our
  rotation is R = Rz(-roll)·Ry(-yaw)·Rx(-pitch) with roll applied last (workers/pose.py):
  R' = Rz(-δ)·R;
* a mirror maps R to F·R·F with F = diag(-1, 1, 1) (yaw and roll change sign), swaps the
  _L/_R blendshapes (so eta' = M·P·w) and the left/right 68-point landmarks; identity
  alpha has no mirror map in coefficients, so its loss (training/train.py)
  mirrors the 3D landmarks it produces instead.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.npyio import NpzFile

from workers.crops import CropRule
from workers.mirror import MIRROR68

CTX_FACTOR = 1.25  # context crop side / inference crop side: room for the jitter
CTX_SIZE = 160


def context_rule(rule: CropRule, size: int = CTX_SIZE) -> CropRule:
    """The crop rule enlarged by CTX_FACTOR around the same centre."""
    side = (1 + 2 * rule.enlarge) * CTX_FACTOR
    return replace(rule, size=size, enlarge=(side - 1) / 2)


FIELDS = ("crop", "blend", "blend_mask", "rot", "pose_weight", "centre", "scale", "lm", "lm_mask",
          "shape", "shape_mask", "emotion")
NO_EMOTION = -1


def with_defaults(d: dict) -> dict:
    """Fill fields older label files and renders lack: every expression label known
    (blend_mask), every pose label fully trusted (pose_weight), no emotion label."""
    n = len(d["crop"])
    return {"blend_mask": np.ones(n, bool), "pose_weight": np.ones(n, np.float32),
            "emotion": np.full(n, NO_EMOTION, np.int64), **d}


def emotion_index(d: NpzFile) -> np.ndarray:
    """A label file's emotion names as indices into workers.emotion_labels.CLASSES
    (NO_EMOTION where there is none: AFLW, video frames)."""
    from workers.emotion_labels import EMOTION_CLASSES as CLASSES

    if "emotion" not in d.files:
        return np.full(len(d["keep"]), NO_EMOTION, np.int64)
    index = {name: i for i, name in enumerate(CLASSES)}
    return np.array([index.get(str(e), NO_EMOTION) for e in d["emotion"]], np.int64)


def real_to_samples(path: Path) -> dict:
    """Teacher-label file (training/real_labels.py) → the common layout."""
    from workers.pose import matrix_from_euler

    d = np.load(path)
    keep = d["keep"]
    n = int(keep.sum())
    lm = np.zeros((n, 68, 2), np.float32)
    mask = np.zeros((n, 68), bool)
    lm[:, d["lm9_ids"]] = d["lm9"][keep]
    mask[:, d["lm9_ids"]] = True
    rot = np.stack([matrix_from_euler(*e) for e in d["euler"][keep]]).astype(np.float32)
    return {
        "crop": d["crop"][keep], "blend": d["blend"][keep].astype(np.float32), "rot": rot,
        "blend_mask": d["blend_mask"][keep] if "blend_mask" in d.files else np.ones(n, bool),
        # how far the pose label is trusted (wild_labels.py: 1 MediaPipe, less for 3DDFA_V2)
        "pose_weight": d["trust_pose"][keep].astype(np.float32) if "trust_pose" in d.files else np.ones(n, np.float32),
        "centre": d["centre"][keep].astype(np.float32), "scale": d["scale"][keep].astype(np.float32),
        "lm": lm, "lm_mask": mask,
        "shape": np.zeros((n, 99), np.float32), "shape_mask": np.zeros(n, bool),
        "emotion": emotion_index(d)[keep],
    }


def concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


@dataclass
class AugmentConfig:
    scale: float = 0.10      # box side jitter, fraction
    shift: float = 0.06      # box centre jitter, fraction of the side
    rotate_deg: float = 20.0
    mirror: bool = True
    colour: float = 0.3
    # degradations of real use, each applied to a fraction of the faces
    low_res: float = 0.25    # down to 20-60% of the side and back up (small, compressed faces)
    blur: float = 0.15       # Gaussian blur, sigma 0.5-2 px
    occlude: float = 0.2     # a flat or noisy rectangle of 15-45% of the side (hands, cups, hair)
    border: float = 0.3      # black margins on some sides, as faces at a frame's edge have; the
    #                          in-the-wild crops (wild_labels.py) have them, so without this a
    #                          black margin would tell the network which teacher labelled a face


def augment(batch: dict, size: int, rng: np.random.Generator, cfg: AugmentConfig,
            blend_perm: np.ndarray, blend_to_eta: torch.Tensor, train: bool = True,
            device: torch.device | str = "cpu") -> tuple[torch.Tensor, dict]:
    """Cut network inputs (N,3,size,size), normalised to [-1, 1], and move the labels.

    The pixel work (resampling, colour) runs on ``device``, where the network is: on a GPU
    a single CPU process cutting crops would otherwise cap training at a few hundred
    images a second. The random draws and the label maps stay in numpy, so a seed gives
    the same augmentation on either device. Inputs come back on ``device``, labels on the CPU."""
    batch = with_defaults(batch)
    crop = torch.from_numpy(batch["crop"]).to(device).permute(0, 3, 1, 2).float().div_(255)
    n, _, ctx, _ = crop.shape
    if train:
        s = 1 + rng.uniform(-cfg.scale, cfg.scale, n)
        sh = rng.uniform(-cfg.shift, cfg.shift, (n, 2)) * 2 / CTX_FACTOR
        th = np.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg, n))
        flip = rng.random(n) < 0.5 if cfg.mirror else np.zeros(n, bool)
    else:
        s, sh, th, flip = np.ones(n), np.zeros((n, 2)), np.zeros(n), np.zeros(n, bool)
    # grid_sample maps output normalised coords o to input normalised coords A·o + b
    c, si = np.cos(th), np.sin(th)
    k = s / CTX_FACTOR
    A = np.stack([np.stack([k * c, -k * si], -1), np.stack([k * si, k * c], -1)], 1)  # (n,2,2)
    A[flip, :, 0] *= -1  # mirror the output's x
    theta = torch.from_numpy(np.concatenate([A, sh[:, :, None]], 2)).float().to(device)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    x = F.grid_sample(crop, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    Ainv = np.linalg.inv(A)

    def move(p: np.ndarray) -> np.ndarray:  # ctx pixels (n,K,2) -> output pixels
        pn = p / ctx * 2 - 1
        o = np.einsum("nij,nkj->nki", Ainv, pn - sh[:, None, :])
        return (o + 1) / 2 * size

    lm = move(batch["lm"].astype(np.float64))
    lm_mask = batch["lm_mask"].copy()
    lm[flip] = lm[flip][:, MIRROR68]
    lm_mask[flip] = lm_mask[flip][:, MIRROR68]
    centre = move(batch["centre"][:, None, :].astype(np.float64))[:, 0]
    # in-plane angle of the image's +x axis after the map (y down: positive = clockwise)
    v = Ainv[:, :, 0].copy()
    v[flip, 0] *= -1  # measure before the mirror; the mirror is applied to R below
    delta = np.arctan2(v[:, 1], v[:, 0])
    R = batch["rot"].astype(np.float64)
    Fm = np.diag([-1.0, 1.0, 1.0])
    R = np.where(flip[:, None, None], Fm @ R @ Fm, R)
    cz, sz = np.cos(-delta), np.sin(-delta)
    Rz = np.zeros((n, 3, 3)); Rz[:, 0, 0] = cz; Rz[:, 0, 1] = -sz; Rz[:, 1, 0] = sz; Rz[:, 1, 1] = cz; Rz[:, 2, 2] = 1
    R = Rz @ R
    blend = batch["blend"].copy()
    blend[flip] = blend[flip][:, blend_perm]
    out_scale = batch["scale"] * (size / (ctx / CTX_FACTOR)) / s

    if train and cfg.colour > 0:
        g = torch.from_numpy(rng.uniform(1 - cfg.colour, 1 + cfg.colour, (n, 3, 1, 1))).float().to(device)
        b = torch.from_numpy(rng.uniform(-cfg.colour / 3, cfg.colour / 3, (n, 1, 1, 1))).float().to(device)
        gray = x.mean(1, keepdim=True)
        sat = torch.from_numpy(rng.uniform(0, 1.5, (n, 1, 1, 1))).float().to(device)
        x = (gray + (x - gray) * sat) * g + b
        x = x.clamp_(0, 1)
    if train:
        x = degrade(x, rng, cfg)
    x = (x - 0.5) / 0.5
    labels = {
        "eta": torch.from_numpy(blend).float() @ blend_to_eta.T,
        "R": torch.from_numpy(R).float(),
        "centre": torch.from_numpy(centre / size * 2 - 1).float(),
        "log_scale": torch.from_numpy(np.log(out_scale)).float(),
        "lm": torch.from_numpy(lm / size * 2 - 1).float(),
        "lm_mask": torch.from_numpy(lm_mask),
        "blend_mask": torch.from_numpy(batch["blend_mask"]),
        "pose_weight": torch.from_numpy(batch["pose_weight"]).float(),
        "shape": torch.from_numpy(batch["shape"]).float(),
        "shape_mask": torch.from_numpy(batch["shape_mask"]),
        "flip": torch.from_numpy(flip),
        "delta_deg": torch.from_numpy(np.degrees(delta)).float(),
        "emotion": torch.from_numpy(batch["emotion"]).long(),   # a mirrored face keeps its emotion
    }
    return x.contiguous(), labels


def degrade(x: torch.Tensor, rng: np.random.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Low resolution, blur and occluders on (N,3,S,S) images in [0, 1]: what faces in the
    wild look like and clean crops do not. Labels do not move (an occluded face keeps its
    pose and expression; the network must see through it)."""
    n, _, size, _ = x.shape
    x = x.clone()
    for i in np.flatnonzero(rng.random(n) < cfg.low_res):
        side = max(8, int(size * rng.uniform(0.2, 0.6)))
        small = F.interpolate(x[i:i + 1], size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        x[i:i + 1] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    for i in np.flatnonzero(rng.random(n) < cfg.blur):
        sigma = rng.uniform(0.5, 2.0)
        r = int(np.ceil(2.5 * sigma))
        k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma ** 2))
        k = k / k.sum()
        img = F.pad(x[i:i + 1], (r, r, r, r), mode="replicate")
        img = F.conv2d(img, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
        x[i:i + 1] = F.conv2d(img, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    for i in np.flatnonzero(rng.random(n) < cfg.border):
        left, top, right, bottom = (rng.uniform(0, 0.25, 4) * (rng.random(4) < 0.5) * size).astype(int)
        x[i, :, :, :left] = 0
        x[i, :, :top, :] = 0
        x[i, :, :, size - right:] = 0        # right = 0: an empty slice, the side is kept
        x[i, :, size - bottom:, :] = 0
    for i in np.flatnonzero(rng.random(n) < cfg.occlude):
        h, w = (rng.uniform(0.15, 0.45, 2) * size).astype(int) + 1
        y0, x0 = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        fill = torch.from_numpy(rng.uniform(0, 1, (3, 1, 1))).float().to(x.device)
        if rng.random() < 0.5:
            fill = (fill + torch.from_numpy(rng.normal(0, 0.2, (3, h, w))).float().to(x.device)).clamp(0, 1)
        x[i, :, y0:y0 + h, x0:x0 + w] = fill
    return x


def sample_batch(data: dict, idx: np.ndarray) -> dict:
    return {k: data[k][idx] for k in FIELDS}
