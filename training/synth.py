"""Render shards of synthetic training faces with exact labels.

Each sample is drawn by training/scene.py (identity, expression, pose, light, skin,
background, degradations), found by the same RetinaFace detector as at inference — so the
crop box has the detector's habits — and cut with the context crop rule. When the
detector misses a render (extreme yaw, heavy occlusion) the box comes from the projected
68 landmarks, corrected by the median detector-vs-landmark box relation seen so far.

    python -m training.synth --out data/synth --prefix train --shards 24 --per-shard 500 --seed 1
    python -m training.synth --prefix actions --shards 24 --seed 2 --expressions actions
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from streamer.config import DetectorConfig
from training.data import context_rule
from training.scene import EXPRESSIONS, ExpressionSampler
from workers import face_model
from workers.boxes import iou_matrix
from workers.crops import CropRule, crop_faces
from workers.detector import FaceDetector
from workers.pose import matrix_from_euler

IMAGE_SIZE = 256
PAD = IMAGE_SIZE // 2


class BoxModel:
    """Detector box from a landmark box: running medians of the relation on hits."""

    def __init__(self) -> None:
        self.rel: list[np.ndarray] = []

    @staticmethod
    def _lm_box(lm2d: np.ndarray) -> np.ndarray:
        return np.array([*lm2d.min(0), *lm2d.max(0)])

    def learn(self, lm2d: np.ndarray, det_box: np.ndarray) -> None:
        b = self._lm_box(lm2d)
        side = max(b[2] - b[0], b[3] - b[1])
        c, dc = (b[:2] + b[2:]) / 2, (det_box[:2] + det_box[2:]) / 2
        ds = max(det_box[2] - det_box[0], det_box[3] - det_box[1])
        self.rel.append(np.array([*(dc - c) / side, ds / side]))

    def guess(self, lm2d: np.ndarray) -> np.ndarray:
        b = self._lm_box(lm2d)
        side = max(b[2] - b[0], b[3] - b[1])
        r = np.median(self.rel[-500:], axis=0) if len(self.rel) >= 5 else np.array([0, -0.05, 1.0])
        c = (b[:2] + b[2:]) / 2 + r[:2] * side
        half = r[2] * side / 2
        return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])


def make_shard(n: int, seed: int, detector: FaceDetector, boxes: BoxModel, ctx: CropRule,
               backgrounds: list[np.ndarray] | None = None, expressions: ExpressionSampler | None = None) -> dict:
    from training.scene import make_sample

    fm = face_model.load()
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("crop", "blend", "rot", "centre", "scale", "lm", "lm_mask", "shape",
                            "shape_mask", "detected", "euler")}
    for _ in range(n):
        img, lab = make_sample(rng, fm, size=IMAGE_SIZE, backgrounds=backgrounds, expressions=expressions)
        lm2d = np.asarray(lab["landmarks2d"], np.float64)
        det = detector.detect([img])[0]
        box, hit = None, False
        if len(det):
            lb = boxes._lm_box(lm2d)
            ious = iou_matrix(det.boxes.astype(np.float64), lb[None])[:, 0]
            j = int(np.argmax(ious))
            if ious[j] > 0.3:
                box, hit = det.boxes[j].astype(np.float64), True
                boxes.learn(lm2d, box)
        if box is None:
            box = boxes.guess(lm2d)
        # The context crop may reach past a render's edges; edge-replicate so that no black
        # border (which real frames rarely have) becomes a "this is synthetic" cue.
        img = cv2.copyMakeBorder(img, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
        box, lm2d = box + PAD, lm2d + PAD
        crop, aff = crop_faces(img, box[None], ctx)
        a = aff[0]
        to_ctx = lambda p: (np.asarray(p, np.float64) - a[:, 2]) / a[0, 0]
        depth27 = -float(lab["landmarks3d"][27][2])
        rows["crop"].append(crop[0])
        rows["blend"].append(np.asarray(lab["blendshapes"], np.float32))
        rows["rot"].append(matrix_from_euler(lab["yaw"], lab["pitch"], lab["roll"]).astype(np.float32))
        rows["euler"].append([lab["yaw"], lab["pitch"], lab["roll"]])
        rows["centre"].append(to_ctx(lm2d[27]))
        rows["scale"].append(lab["focal"] / depth27 / a[0, 0])
        rows["lm"].append(to_ctx(lm2d))
        rows["lm_mask"].append(np.ones(68, bool))
        rows["shape"].append(np.asarray(lab["alpha"], np.float32))
        rows["shape_mask"].append(True)
        rows["detected"].append(hit)
    out = {k: np.asarray(v) for k, v in rows.items()}
    for k in ("centre", "scale", "lm", "euler"):
        out[k] = out[k].astype(np.float32)
    return out


def backgrounds_from(paths: list[Path], n: int = 64, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """Random patches of the given videos' frames, for render backgrounds."""
    from streamer.config import SourceConfig
    from streamer.sources.files import open_source
    rng = np.random.default_rng(seed)
    out = []
    for p in paths:
        with open_source(str(p), SourceConfig(every=25)) as src:
            for f in src:
                h, w = f.image.shape[:2]
                s = min(h, w, size)
                y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
                out.append(f.image[y:y + s, x:x + s].copy())
    rng.shuffle(out)
    return out[:n]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/synth"))
    ap.add_argument("--prefix", default="train")
    ap.add_argument("--first", type=int, default=0, help="first shard index (to split work over processes)")
    ap.add_argument("--shards", type=int, default=20)
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backgrounds", type=Path, nargs="*", default=[])
    ap.add_argument("--expressions", choices=sorted(EXPRESSIONS), default="sparse",
                    help="how expressions are drawn (training/scene.py): sparse shapes or facial actions")
    args = ap.parse_args(argv)
    from tqdm import tqdm
    expressions = EXPRESSIONS[args.expressions]()
    args.out.mkdir(parents=True, exist_ok=True)
    detector = FaceDetector(DetectorConfig(score_threshold=0.5), threads=1)
    boxes = BoxModel()
    ctx = context_rule(CropRule())
    bgs = backgrounds_from(args.backgrounds) if args.backgrounds else None
    for s in tqdm(range(args.first, args.first + args.shards), desc=f"render {args.prefix}", unit="shard"):
        path = args.out / f"{args.prefix}-{s:04d}.npz"
        if path.exists():
            continue
        shard = make_shard(args.per_shard, args.seed * 100_003 + s, detector, boxes, ctx, bgs, expressions)
        tmp = args.out / f".{args.prefix}-{s:04d}.tmp.npz"
        np.savez(tmp, **shard)
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
