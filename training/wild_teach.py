"""The slow half of the in-the-wild labels: RetinaFace and MediaPipe on every face, in chunks.

Each face of an AFLW or FER row is a small frame (120 or 48 px) holding one centred face.
Both detectors miss faces that fill a small image, so the frame is enlarged and centred
on a black canvas (``WildSet.upscale``, ``.canvas``); what they find is mapped back to the
frame's own pixels, which is where every raw result here is stored.

Which detection is the face: the one that overlaps most (IoU >= MATCH_IOU) the box the
frame's known framing implies (``prior_box``); a MediaPipe face must overlap the chosen
detector box (or that prior) the same way. A crop of a crowd may hold other faces; they
are ignored.

Results go to one part file per CHUNK rows (``PARTS/<set>/<first row>.npz``, written to a
temporary name and renamed), so a killed run loses at most one chunk and a rerun skips the
chunks already written. Nothing here depends on other chunks; the fits that do (box
fallback, scale calibration) happen when the parts are assembled (wild_labels.py).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from training.teacher import PARTIAL68, Teacher
from training.teacher_3ddfa import ROI_SHIFT, ROI_SIDE
from training.wild_data import AFLW, WildSet
from workers.boxes import iou_matrix

if TYPE_CHECKING:   # loaded where it is used: onnxruntime is heavy
    from workers.detector import FaceDetector

CHUNK = 500
MATCH_IOU = 0.3
DETECTOR_SCORE = 0.6   # as real_labels.py; the prior-box overlap rejects stray boxes
RAW_KEYS = ("row", "det_box", "det_score", "mp_found", "mp_box", "mp_blend", "mp_rot", "mp_lm9",
            "mp_iod")


def prior_box(ws: WildSet) -> np.ndarray:
    """(4,) where the face box sits in a frame before any detector has looked: AFLW crops
    are 3DDFA ROIs (so the ROI rule inverted: a box of side frame / 1.58, its centre 0.14
    of that above the crop centre); FER faces fill their frame."""
    f = float(ws.frame)
    if ws.name != AFLW.name:
        return np.array([0.0, 0.0, f, f])
    side = f / ROI_SIDE
    cx, cy = f / 2, f / 2 - ROI_SHIFT * side
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def to_canvas(image: np.ndarray, ws: WildSet) -> tuple[np.ndarray, float]:
    """Frame enlarged ``upscale`` times (bicubic) and centred on a black canvas; the
    frame's origin in canvas pixels (so frame = (canvas - offset) / upscale)."""
    side = ws.frame * ws.upscale
    off = (ws.canvas - side) // 2
    canvas = np.zeros((ws.canvas, ws.canvas, 3), np.uint8)
    canvas[off:off + side, off:off + side] = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    return canvas, float(off)


def empty(n: int) -> dict:
    nan = np.nan
    return {
        "row": np.zeros(n, np.int64),
        "det_box": np.full((n, 4), nan, np.float32), "det_score": np.full(n, nan, np.float32),
        "mp_found": np.zeros(n, bool), "mp_box": np.full((n, 4), nan, np.float32),
        "mp_blend": np.zeros((n, 53), np.float32), "mp_rot": np.full((n, 3, 3), nan, np.float32),
        "mp_lm9": np.full((n, len(PARTIAL68), 2), nan, np.float32), "mp_iod": np.full(n, nan, np.float32),
    }


def teach(ws: WildSet, images: np.ndarray, detector: FaceDetector, teacher: Teacher) -> dict:
    """Raw RetinaFace + MediaPipe results for (N, F, F, 3) frames, in frame pixels.

    ``mp_lm9`` holds MediaPipe's points for teacher.PARTIAL68 (iBUG ids 8, 27, 30, 36, 39,
    42, 45, 48, 54); ``mp_iod`` the 3-D distance between the outer eye corners (frame
    pixels), which does not shrink as the head turns."""
    n = len(images)
    out = empty(n)
    prior = prior_box(ws)[None]
    canvases, offsets = zip(*(to_canvas(im, ws) for im in images)) if n else ((), ())
    dets = detector.detect(list(canvases)) if n else []
    for i, (canvas, off, det) in enumerate(zip(canvases, offsets, dets)):
        ref = prior
        if len(det):
            boxes = (det.boxes - off) / ws.upscale
            iou = iou_matrix(prior, boxes)[0]
            j = int(np.argmax(iou))
            if iou[j] >= MATCH_IOU:
                out["det_box"][i], out["det_score"][i] = boxes[j], det.scores[j]
                ref = boxes[j:j + 1]
        faces = teacher(canvas)
        if not faces:
            continue
        tboxes = (np.stack([f.box for f in faces]) - off) / ws.upscale
        iou = iou_matrix(ref, tboxes)[0]
        j = int(np.argmax(iou))
        if iou[j] < MATCH_IOU:
            continue
        f = faces[j]
        out["mp_found"][i] = True
        out["mp_box"][i] = tboxes[j]
        out["mp_blend"][i] = f.blend53
        out["mp_rot"][i] = f.rotation
        out["mp_lm9"][i] = (f.partial68 - off) / ws.upscale
        out["mp_iod"][i] = np.linalg.norm(f.landmarks[33] - f.landmarks[263]) / ws.upscale
    return out


def part_path(parts: Path, ws: WildSet, start: int) -> Path:
    return parts / ws.name / f"{start:06d}.npz"


def chunks(ws: WildSet, limit: int | None = None) -> list[tuple[int, int]]:
    """Fixed [start, stop) row ranges, the same for every run (so parts can be reused)."""
    n = ws.rows() if limit is None else min(limit, ws.rows())
    return [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]


def run(ws: WildSet, parts: Path, limit: int | None = None, threads: int = 1) -> list[Path]:
    """Teach every chunk of ``ws`` that has no part file yet; return all part paths."""
    from tqdm import tqdm

    from streamer.config import DetectorConfig
    from training.teacher import Teacher
    from workers import face_model
    from workers.detector import FaceDetector

    todo = [(a, b) for a, b in chunks(ws, limit) if not part_path(parts, ws, a).exists()]
    paths = [part_path(parts, ws, a) for a, _ in chunks(ws, limit)]
    if not todo:
        return paths
    detector = FaceDetector(DetectorConfig(score_threshold=DETECTOR_SCORE), threads=threads)
    teacher = Teacher(face_model.load().blend_names, max_faces=2)
    bar = tqdm(total=sum(b - a for a, b in todo), desc=f"teachers on {ws.name}", unit="face")
    try:
        for a, b in todo:
            data = ws.read(a, b)
            out: dict[str, Any] = {"row": np.arange(a, b)}
            for s in range(0, b - a, 50):  # tqdm moves every 50 faces
                part = teach(ws, data["image"][s:s + 50], detector, teacher)
                for k, v in part.items():
                    if k != "row":
                        out.setdefault(k, []).append(v)
                bar.update(min(50, b - a - s))
            out = {k: (np.concatenate(v) if isinstance(v, list) else v) for k, v in out.items()}
            path = part_path(parts, ws, a)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **out)
            os.replace(tmp, path)
    finally:
        bar.close()
        teacher.close()
    return paths


def load(paths: list[Path]) -> dict:
    """The raw results of several part files, concatenated in row order."""
    parts = [np.load(p) for p in sorted(paths)]
    return {k: np.concatenate([p[k] for p in parts]) for k in RAW_KEYS}


def ddfa(ws: WildSet, rois: np.ndarray | None = None, limit: int | None = None,
         source: Path | str | None = None) -> dict:
    """3DDFA_V2 on every frame of ``ws`` (fast: no part files), in frame pixels.

    ``rois`` (N, 4): the square each frame is cut at; None uses the frame itself, right for
    AFLW, whose crops are already 3DDFA ROIs. Returns ``euler`` (N, 3), ``rot`` (N, 3, 3),
    ``scale`` (N,) frame pixels per BFM unit and ``lm68`` (N, 68, 2) frame pixels."""
    from tqdm import tqdm

    from training.teacher_3ddfa import Teacher3DDFA

    net = Teacher3DDFA(source)
    out: dict[str, list] = {"euler": [], "rot": [], "scale": [], "lm68": []}
    spans = chunks(ws, limit)
    for a, b in tqdm(spans, desc=f"3DDFA on {ws.name}", unit="chunk"):
        images = ws.read(a, b)["image"]
        r = net.predict_crops(images) if rois is None else net.predict_each(images, rois[a:b])
        for k, v in (("euler", r.euler), ("rot", r.rotation), ("scale", r.scale), ("lm68", r.landmarks)):
            out[k].append(v.astype(np.float32))
    return {k: np.concatenate(v) for k, v in out.items()}
