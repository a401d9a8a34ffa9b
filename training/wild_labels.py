"""Teacher labels for in-the-wild faces: AFLW's 19,080 crops and FER2013's 28,709 faces.

The faces the regressor lacks (turned heads, every age and light, low resolution) get
labels in the layout training/real_labels.py writes, so data.real_to_samples
reads them like the video labels: a context crop (CTX_SIZE px, data.context_rule) and,
in its pixels, blendshapes, pose, face centre, scale and nine landmarks.

Crops look like inference: RetinaFace (workers/detector.py, on the frame enlarged on a
canvas, see wild_teach.py) gives the box and workers/crops.py's rule, enlarged for
context, cuts the crop from the frame with zero padding. Where RetinaFace misses (0.5% of
AFLW, mostly profiles) the box comes from the frame's known framing: the median detector
box in frame units over the faces it did find, per |yaw| bin of AFLW's yaw (BoxFallback;
its IoU with the real box is in docs/teachers.md).

Who labels what (each face records it, with a trust weight per label group):

* pose: MediaPipe where it finds the face and, on AFLW, its yaw is within YAW_AGREE_DEG of
  AFLW's (beyond that its fit has failed: a third of its 60-90 degree faces); otherwise
  3DDFA_V2's rotation (FER), or on AFLW the rotation closest to 3DDFA_V2's that has AFLW's
  yaw (euler_fit.with_yaw, which also keeps near-profile pitch and roll from wandering).
  On AFLW faces turned AFLW_YAW_FROM degrees or more, AFLW's yaw also replaces
  MediaPipe's (again by ``with_yaw``): MediaPipe's yaw error grows to 8-18 degrees there
  against AFLW's annotation, which is 5.5 degrees from a dense 3DMM fit;
* expression: MediaPipe's blendshapes where its pose is accepted; elsewhere unknown
  (``blend_mask`` False, zeros, trust 0), never a guess;
* landmarks (the nine iBUG points of teacher.PARTIAL68, point by point): AFLW's hand-placed
  point where it has one, else MediaPipe's, else 3DDFA_V2's (which has all 68);
* centre and scale: MediaPipe's (as real_labels.py), else 3DDFA_V2's landmark 27 and its
  camera scale converted to pixels per cm by the median ratio to MediaPipe's on the
  faces both label.

Split: by image name, hashed with a seed (``heldout``), so the split is fixed by the
command alone and does not depend on row order; AFLW and FER each hold out about 10%.
The slow teacher pass is chunked into part files (wild_teach.py); a killed run resumes.

    nice -n 10 python -m training.wild_labels          # data/labels/{aflw,fer}_{train,heldout}.npz
    python -m training.wild_labels --check             # the teacher table of docs/teachers.md
"""
from __future__ import annotations

import argparse
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import wild_teach
from training.data import CTX_FACTOR, context_rule
from training.euler_fit import with_yaw
from training.teacher import PARTIAL68
from training.wild_data import AFLW, AFLW21_TO_68, EMOTIONS, REPO_ROOT, SETS, WildSet, yaw_bin
from workers.crops import CropRule, crop_affines, crop_faces
from workers.pose import euler_from_matrix, matrix_from_euler

OUT = REPO_ROOT / "data" / "labels"
SEED = 13
HELDOUT = 0.1
YAW_AGREE_DEG = 20.0     # MediaPipe's fit counts as failed beyond this from AFLW's yaw
AFLW_YAW_FROM = 30.0     # from this |yaw| on, AFLW's yaw replaces MediaPipe's
# Trust weights: roughly inverse squared errors relative to MediaPipe (docs/teachers.md).
# Pose: 3DDFA_V2's pitch and roll err 1.4-1.8x MediaPipe's (on AFLW2000-3D), so
# (1/1.5)^2 ~ 0.45 of the weight with AFLW's yaw and a little less without it.
# Landmarks: 3DDFA_V2's NME is 1.2x MediaPipe's on the faces both label (AFLW check).
TRUST_POSE = {"mediapipe": 1.0, "mediapipe+aflw_yaw": 1.0, "3ddfa+aflw_yaw": 0.5, "3ddfa": 0.4}
TRUST_LM = {"aflw": 1.0, "mediapipe": 1.0, "3ddfa": 0.7}
_I27 = list(PARTIAL68).index(27)


def expression_trust(yaw: np.ndarray) -> np.ndarray:
    """1 up to 30 degrees of yaw, down to 0.5 at 90: beyond 30 degrees MediaPipe sees one
    side of the face and infers the other side's blendshapes."""
    return np.clip(1 - 0.5 * (np.abs(yaw) - 30) / 60, 0.5, 1.0)


def heldout(names: np.ndarray, seed: int = SEED, frac: float = HELDOUT) -> np.ndarray:
    """True for the held-out images: SHA-256 of ``seed:name`` below ``frac``. Every face of
    one image falls on the same side, and no run order or subset changes a face's side."""
    h = [int.from_bytes(hashlib.sha256(f"{seed}:{n}".encode()).digest()[:8], "big") for n in names]
    return np.array(h, np.float64) / 2.0 ** 64 < frac


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i], (N, 4) x1 y1 x2 y2 each."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


@dataclass
class BoxFallback:
    """RetinaFace's box predicted from a frame's framing: per bin, the median box centre and
    size in frame units over the faces RetinaFace found (bins: |yaw| for AFLW, whose
    detector boxes narrow as the head turns; one bin for FER)."""

    rel: np.ndarray   # (bins, 4) cx, cy, w, h / frame
    frame: float

    @classmethod
    def fit(cls, det_box: np.ndarray, bins: np.ndarray, n_bins: int, frame: float) -> "BoxFallback":
        found = np.isfinite(det_box[:, 0])
        rel = _xywh(det_box[found]) / frame
        overall = np.median(rel, 0) if len(rel) else np.array([0.5, 0.5, 0.7, 0.8])
        per = [np.median(rel[bins[found] == k], 0) if (bins[found] == k).sum() >= 5 else overall
               for k in range(n_bins)]
        return cls(np.array(per), float(frame))

    def predict(self, bins: np.ndarray) -> np.ndarray:
        cx, cy, w, h = (self.rel[bins] * self.frame).T
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def fit_roi_relation(det_box: np.ndarray, frame: float, frontal: np.ndarray) -> np.ndarray:
    """Where 3DDFA_V2's ROI sits around a RetinaFace box, measured on frontal AFLW crops
    (whose frame is the ROI): median (dx, dy, side) in units of the box's mean side.
    3DDFA_V2's own rule (1.58, 0.14) was made for FaceBoxes, whose boxes are smaller."""
    ok = np.isfinite(det_box[:, 0]) & frontal
    cx, cy, w, h = _xywh(det_box[ok]).T
    s = (w + h) / 2
    return np.median(np.stack([(frame / 2 - cx) / s, (frame / 2 - cy) / s, frame / s], 1), 0)


def roi_from_detector_box(boxes: np.ndarray, rel: np.ndarray) -> np.ndarray:
    cx, cy, w, h = _xywh(boxes).T
    s = (w + h) / 2
    x, y, half = cx + rel[0] * s, cy + rel[1] * s, rel[2] * s / 2
    return np.stack([x - half, y - half, x + half, y + half], 1)


def labels(ws: WildSet, raw: dict, dd: dict, meta: dict, boxes: np.ndarray, interocular_cm: float) -> dict:
    """Per-face labels in frame pixels (crops and context pixels come later)."""
    n = len(boxes)
    aflw = "yaw" in meta
    found = raw["mp_found"]
    e_mp = np.full((n, 3), np.nan)
    e_mp[found] = np.array([euler_from_matrix(r) for r in raw["mp_rot"][found].astype(np.float64)]).reshape(-1, 3)
    e_dd = dd["euler"].astype(np.float64)
    acc = found & (np.abs(e_mp[:, 0] - meta["yaw"]) <= YAW_AGREE_DEG) if aflw else found.copy()

    euler = np.where(acc[:, None], e_mp, np.nan)
    if aflw:  # AFLW's yaw wherever MediaPipe's is not the better of the two
        turned = acc & (np.abs(meta["yaw"]) >= AFLW_YAW_FROM)
        euler[turned] = with_yaw(raw["mp_rot"][turned], meta["yaw"][turned])
        euler[~acc] = with_yaw(dd["rot"][~acc], meta["yaw"][~acc])
        pose_source = np.where(turned, "mediapipe+aflw_yaw", np.where(acc, "mediapipe", "3ddfa+aflw_yaw"))
    else:
        euler[~acc] = with_yaw(dd["rot"][~acc], e_dd[~acc, 0])
        pose_source = np.where(acc, "mediapipe", "3ddfa")

    lm9 = dd["lm68"][:, PARTIAL68].astype(np.float64)
    lm_src = np.full((n, len(PARTIAL68)), "3ddfa", dtype="<U9")
    lm9[acc] = raw["mp_lm9"][acc]
    lm_src[acc] = "mediapipe"
    if aflw:
        for a21, j in AFLW21_TO_68.items():
            if j in PARTIAL68:
                k = list(PARTIAL68).index(j)
                have = np.isfinite(meta["pts21"][:, a21, 0])
                lm9[have, k] = meta["pts21"][have, a21]
                lm_src[have, k] = "aflw"

    mp_scale = raw["mp_iod"].astype(np.float64) / interocular_cm     # frame px per cm
    both = acc & np.isfinite(mp_scale)
    k_cm = float(np.median(mp_scale[both] / dd["scale"][both])) if both.any() else float("nan")
    scale = np.where(both, mp_scale, k_cm * dd["scale"])
    centre = np.where(acc[:, None], raw["mp_lm9"][:, _I27], dd["lm68"][:, 27])

    det = np.isfinite(raw["det_box"][:, 0])
    keep = np.ones(n, bool) if aflw else (det | found)   # FER frames no detector calls a face
    return {
        "euler": euler.astype(np.float32),
        "rot": np.stack([matrix_from_euler(*e) for e in euler]).astype(np.float32),
        "blend": np.where(acc[:, None], raw["mp_blend"], 0).astype(np.float32),
        "blend_mask": acc, "blend_source": np.where(acc, "mediapipe", "none"),
        "pose_source": pose_source, "lm9_source": lm_src,
        "trust_pose": np.vectorize(TRUST_POSE.get, otypes=[np.float32])(pose_source),
        "trust_expr": (acc * expression_trust(euler[:, 0])).astype(np.float32),
        "trust_lm": np.vectorize(TRUST_LM.get, otypes=[np.float32])(lm_src).mean(1),
        "lm9": lm9, "centre": centre, "scale": scale, "keep": keep,
        "euler_mediapipe": e_mp.astype(np.float32), "euler_3ddfa": e_dd.astype(np.float32),
        "lm68_3ddfa": dd["lm68"].astype(np.float64),
        "aflw_yaw": (meta["yaw"] if aflw else np.full(n, np.nan)).astype(np.float32),
        "aflw_pts21": meta["pts21"] if aflw else np.full((n, 21, 2), np.nan),
        "box": boxes.astype(np.float32), "box_source": np.where(det, "retinaface", "fallback"),
        "det_score": raw["det_score"],
        "name": meta["name"], "source": meta["name"],
        "emotion": meta.get("emotion", np.full(n, "", dtype="<U1")),
        "frame": raw["row"], "face": np.zeros(n, np.int64),
        "scale_bfm_per_cm": np.array(k_cm),
    }


def to_context(lab: dict, affines: np.ndarray) -> dict:
    """Frame-pixel labels -> context-crop pixels (the crop map is a scale and a shift)."""
    s, t = affines[:, 0, 0], affines[:, :, 2]
    pts = lambda p: ((p - t[:, None, :]) / s[:, None, None]).astype(np.float32)
    out = dict(lab)
    out["lm9"] = pts(lab["lm9"])
    out["lm68_3ddfa"] = pts(lab["lm68_3ddfa"])
    out["aflw_pts21"] = pts(lab["aflw_pts21"])
    out["centre"] = pts(lab["centre"][:, None])[:, 0]
    out["scale"] = (lab["scale"] / s).astype(np.float32)
    return out


class NpzWriter:
    """An .npz written as it goes: ``crop.npy`` streamed chunk by chunk (a whole FER file's
    crops are 2 GB), the small arrays at the end; renamed into place when complete."""

    def __init__(self, path: Path, n: int, shape: tuple[int, ...]):
        self.path, self.n, self.written = path, n, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_suffix(".tmp.npz")
        self.zf = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.fh = self.zf.open("crop.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(
            self.fh, {"descr": "|u1", "fortran_order": False, "shape": (n, *shape)})

    def add_crops(self, crops: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(crops, np.uint8).tobytes())
        self.written += len(crops)

    def close(self, arrays: dict) -> Path:
        self.fh.close()
        if self.written != self.n:
            raise RuntimeError(f"{self.path}: wrote {self.written} crops, expected {self.n}")
        for k, v in arrays.items():
            with self.zf.open(f"{k}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(v), allow_pickle=False)
        self.zf.close()
        os.replace(self.tmp, self.path)
        return self.path


def build(ws: WildSet, out: Path, parts: Path, seed: int = SEED, frac: float = HELDOUT,
          limit: int | None = None, rule: CropRule = CropRule()) -> dict[str, Path]:
    """Teach (resumably), label, crop and write ``<set>_train.npz`` and ``<set>_heldout.npz``."""
    from tqdm import tqdm

    from workers import face_model

    fm = face_model.load()
    lmk = fm.mean[fm.landmarks68]
    interocular = float(np.linalg.norm(lmk[36] - lmk[45]))
    raw = wild_teach.load(wild_teach.run(ws, parts, limit))
    meta = ws.read(0, len(raw["row"]), images=False)
    if ws.name == AFLW.name:
        bins, n_bins = yaw_bin(meta["yaw"]), 3
        dd = wild_teach.ddfa(ws, None, limit)
        roi_rel = None
    else:
        bins, n_bins = np.zeros(len(raw["row"]), int), 1
        roi_rel = aflw_roi_relation(parts, limit)
    fb = BoxFallback.fit(raw["det_box"], bins, n_bins, ws.frame)
    det = np.isfinite(raw["det_box"][:, 0])
    boxes = np.where(det[:, None], raw["det_box"], fb.predict(bins))
    if roi_rel is not None:
        dd = wild_teach.ddfa(ws, roi_from_detector_box(boxes, roi_rel), limit)
    ctx = context_rule(rule)
    affines = crop_affines(boxes, ctx)
    lab = to_context(labels(ws, raw, dd, meta, boxes, interocular), affines)

    held = heldout(lab["name"], seed, frac)
    scalars = {"lm9_ids": np.array(sorted(PARTIAL68)), "ctx_factor": np.array(CTX_FACTOR),
               "face_model_sha256": np.array(fm.sha256), "dataset": np.array(ws.name),
               "split_seed": np.array(seed), "heldout_frac": np.array(frac),
               "emotion_names": np.array(EMOTIONS), "scale_bfm_per_cm": lab.pop("scale_bfm_per_cm"),
               "box_fallback_rel": fb.rel}
    paths = {}
    writers = {}
    for split, m in (("train", ~held), ("heldout", held)):
        writers[split] = (NpzWriter(out / f"{ws.name}_{split}.npz", int(m.sum()), (ctx.size, ctx.size, 3)), m)
    for a, b in tqdm(wild_teach.chunks(ws, limit), desc=f"crops of {ws.name}", unit="chunk"):
        images = ws.read(a, b)["image"]
        crops = np.stack([crop_faces(im, boxes[i:i + 1], ctx)[0][0] for i, im in zip(range(a, b), images)])
        for w, m in writers.values():
            w.add_crops(crops[m[a:b]])
    for split, (w, m) in writers.items():
        paths[split] = w.close({**{k: v[m] for k, v in lab.items()}, **scalars, "split": np.array(split)})
    return paths


def aflw_roi_relation(parts: Path, limit: int | None) -> np.ndarray:
    """fit_roi_relation on AFLW's teacher pass (run first if its parts are missing)."""
    raw = wild_teach.load(wild_teach.run(AFLW, parts, limit))
    meta = AFLW.read(0, len(raw["row"]), images=False)
    return fit_roi_relation(raw["det_box"], AFLW.frame, np.abs(meta["yaw"]) < 30)


def run_check(parts: Path, limit: int | None) -> str:
    from training import teacher_check

    raw = wild_teach.load(wild_teach.run(AFLW, parts, limit))
    meta = AFLW.read(0, len(raw["row"]), images=False)
    dd = wild_teach.ddfa(AFLW, None, limit)
    bins = yaw_bin(meta["yaw"])
    fb = BoxFallback.fit(raw["det_box"], bins, 3, AFLW.frame)
    iou = pair_iou(fb.predict(bins), raw["det_box"])   # NaN where RetinaFace found nothing
    return teacher_check.markdown(teacher_check.check(raw, dd, meta, iou))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--out", type=Path, default=OUT, help="where the label files go")
    ap.add_argument("--parts", type=Path, default=None, help="teacher part files (default OUT/wild_parts)")
    ap.add_argument("--seed", type=int, default=SEED, help="split seed")
    ap.add_argument("--heldout", type=float, default=HELDOUT, help="held-out fraction of images")
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows of each set (trials)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="print the teacher check table (AFLW) and stop")
    args = ap.parse_args(argv)

    import cv2
    import torch
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    parts = args.parts or args.out / "wild_parts"
    if args.check:
        print(run_check(parts, args.limit))
        return
    for name in args.sets:
        paths = build(SETS[name], args.out, parts, args.seed, args.heldout, args.limit)
        for split, p in paths.items():
            d = np.load(p)
            print(f"{p}: {len(d['frame'])} faces ({split}), {int(d['keep'].sum())} kept, "
                  f"expression known for {int(d['blend_mask'].sum())}, "
                  f"pose from MediaPipe for {int(np.char.startswith(d['pose_source'], 'mediapipe').sum())}")


if __name__ == "__main__":
    main()
