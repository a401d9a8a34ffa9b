"""Teacher labels for real frames: the step ExpNet never released.

For each video (or photo) every frame goes through the same RetinaFace detector and crop
rule as inference; the teacher (training/teacher.py) runs on the whole frame and
its face is matched to the detection. Per track, a temporal prior cleans the labels:
a running median over a short window (pose 5 frames, blendshapes 3 so blinks survive),
and frames whose raw teacher pose leaves that median by more than ``outlier_deg`` are
dropped as teacher failures.

What is stored, per face: a *context crop* (the inference crop enlarged by CTX_FACTOR so
training can jitter the box the way detectors do), the 53 blendshape weights, the head
rotation, and in context-crop pixels: the face centre (68-point landmark 27, between the
eyes), the pixels-per-centimetre scale, and nine unambiguous 68-point landmarks.

    python -m training.real_labels --out data/labels/real_train.npz VIDEO_OR_IMAGE...
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from scipy.ndimage import median_filter

from streamer.config import DetectorConfig, SourceConfig
from streamer.sources.files import open_source
from training.data import CTX_FACTOR, context_rule
from training.teacher import MP_TO_68, Teacher
from workers import face_model
from workers.boxes import iou_matrix
from workers.crops import CropRule
from workers.detector import FaceDetector
from workers.pipeline import detect_and_crop
from workers.pose import euler_from_matrix

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image
        yield 0, np.asarray(Image.open(path).convert("RGB"))
        return
    with open_source(str(path), SourceConfig()) as src:
        for f in src:
            yield f.index, f.image


def label_media(path: Path, detector: FaceDetector, teacher: Teacher, interocular_cm: float,
                ctx: CropRule, largest_only: bool) -> dict:
    """Per-face raw labels for one video or image (no temporal prior yet)."""
    rows: dict[str, list] = {k: [] for k in ("crop", "blend", "rot", "centre", "scale", "lm9", "frame", "face")}
    for index, img in _frames(path):
        det = detect_and_crop([img], detector, ctx)[0]  # the inference detector, context crops
        faces = teacher(img)
        if not len(det) or not faces:
            continue
        tboxes = np.stack([f.box for f in faces])
        iou = iou_matrix(det.boxes, tboxes)
        order = [int(np.argmax((det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])))] \
            if largest_only else range(len(det))
        for di in order:
            ti = int(np.argmax(iou[di]))
            if iou[di, ti] < 0.3:
                continue
            f = faces[ti]
            a = det.affines[di]
            to_ctx = lambda p: (np.asarray(p, np.float64) - a[:, 2]) / a[0, 0]
            lm = f.landmarks
            iod_px = np.linalg.norm(lm[33] - lm[263])  # 3D distance: rotation-invariant
            rows["crop"].append(det.crops[di])
            rows["blend"].append(f.blend53)
            rows["rot"].append(f.rotation)
            rows["centre"].append(to_ctx(lm[168, :2]))
            rows["scale"].append(iod_px / interocular_cm / a[0, 0])
            rows["lm9"].append(to_ctx(f.partial68))
            rows["frame"].append(index)
            rows["face"].append(di)
    return {k: np.asarray(v) for k, v in rows.items()}


def temporal_prior(lab: dict, outlier_deg: float = 8.0) -> dict:
    """Median-filter one track's labels over time and drop teacher outliers."""
    n = len(lab["frame"])
    if n < 5:
        lab["keep"] = np.ones(n, bool)
        lab["euler"] = np.array([euler_from_matrix(r) for r in lab["rot"]]).reshape(-1, 3)
        return lab
    euler = np.array([euler_from_matrix(r) for r in lab["rot"]])
    med = median_filter(euler, size=(5, 1), mode="nearest")
    lab["keep"] = np.abs(euler - med).max(axis=1) <= outlier_deg
    lab["euler"] = med
    lab["blend"] = median_filter(lab["blend"], size=(3, 1), mode="nearest")
    return lab


def build(paths: list[Path], out: Path, rule: CropRule = CropRule(), threads: int = 2) -> Path:
    from tqdm import tqdm

    fm = face_model.load()
    lmk = fm.mean[fm.landmarks68]
    interocular = float(np.linalg.norm(lmk[36] - lmk[45]))
    detector = FaceDetector(DetectorConfig(score_threshold=0.6), threads=threads)
    teacher = Teacher(fm.blend_names)
    ctx = context_rule(rule)
    parts = []
    for p in tqdm(paths, desc="teacher labels", unit="file"):
        video = p.suffix.lower() not in IMAGE_SUFFIXES
        lab = label_media(p, detector, teacher, interocular, ctx, largest_only=video)
        if not len(lab["frame"]):
            continue
        lab = temporal_prior(lab) if video else temporal_prior(lab, outlier_deg=1e9)
        lab["source"] = np.array([p.name] * len(lab["frame"]))
        parts.append(lab)
    teacher.close()
    keys = ["crop", "blend", "rot", "euler", "centre", "scale", "lm9", "frame", "face", "keep", "source"]
    data: dict[str, Any] = {k: np.concatenate([d[k] for d in parts]) for k in keys}
    data["lm9_ids"] = np.array(sorted(MP_TO_68.values()))
    data["ctx_factor"] = np.array(CTX_FACTOR)
    data["face_model_sha256"] = np.array(fm.sha256)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **data)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("media", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    out = build(args.media, args.out)
    d = np.load(out)
    print(f"{out}: {len(d['frame'])} faces, {int(d['keep'].sum())} kept after the temporal prior")


if __name__ == "__main__":
    main()
