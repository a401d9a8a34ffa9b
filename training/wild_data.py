"""The in-the-wild face sets in ``../shared/data``: AFLW crops and FER2013's training split.

One place that knows how to read them, so the label builder (wild_labels.py) and the
teacher check (teacher_check.py) agree on rows, names and landmark meaning:

* ``aflw/aflw_crops.parquet``: 120x120 RGB crops framed by 3DDFA_V2's ROI rule, AFLW's yaw
  (this project's sign) and 21 hand-placed points in crop pixels. Points AFLW did not
  place are not NaN in the file (its README says so, the data does not): they hold the
  original-photo coordinate x = -1 carried through the crop map, so they are recognised
  by that value (a quarter of all points; one side's points on most profiles).
* ``fer2013/train.parquet``: 48x48 grayscale faces filling the frame, with an emotion.

The 21 AFLW points were checked against 3DDFA_V2's 68 landmarks drawn on crops (the
order in the README holds); ``AFLW21_TO_68`` maps those whose meaning matches an iBUG-68
point. The ear points and the eye and mouth centres have no iBUG counterpart; the nose
wings (AFLW 13, 15) sit on the alae, above and outside iBUG 31/35, so they are left out.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data"
AFLW_PATH = SHARED / "aflw" / "aflw_crops.parquet"
FER_PATH = SHARED / "fer2013" / "train.parquet"

# AFLW-21 index -> iBUG-68 index, where the two name the same point (left/right as seen)
AFLW21_TO_68 = {0: 17, 1: 19, 2: 21, 3: 22, 4: 24, 5: 26, 6: 36, 8: 39, 9: 42, 11: 45,
                14: 30, 17: 48, 19: 54, 20: 8}
# iBUG-68 points that AFLW, MediaPipe's partial set (teacher.MP_TO_68) and 3DDFA all have:
# the points on which the teachers are compared with AFLW's hand-placed ones
COMMON68 = (8, 30, 36, 39, 42, 45, 48, 54)
YAW_BINS = (("0-30", 0.0, 30.0), ("30-60", 30.0, 60.0), ("60-90", 60.0, np.inf))

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def decode(jpeg: bytes) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) RGB uint8 (grayscale faces get three equal channels)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def aflw_points(pts21: np.ndarray, roi: np.ndarray, frame: int = 120) -> np.ndarray:
    """(N, 42) AFLW pts21 and (N, 4) ROIs -> (N, 21, 2) crop pixels, NaN where AFLW
    placed no point (the x = -1 sentinel, or anything far outside the crop)."""
    p = np.asarray(pts21, np.float64).reshape(-1, 21, 2).copy()
    roi = np.asarray(roi, np.float64).reshape(-1, 4)
    sentinel = (-1.0 - roi[:, 0]) * frame / (roi[:, 2] - roi[:, 0])
    bad = (np.abs(p[..., 0] - sentinel[:, None]) < 1e-3) | (np.abs(p - frame / 2) > frame).any(-1)
    p[bad] = np.nan
    return p


def yaw_bin(yaw: np.ndarray) -> np.ndarray:
    """Index into YAW_BINS of |yaw| (beyond 90 degrees counts in the last bin)."""
    a = np.abs(np.asarray(yaw, np.float64))
    return np.searchsorted([b[2] for b in YAW_BINS[:-1]], a, side="right")


@dataclass(frozen=True)
class WildSet:
    """One parquet set: how to read it and how its small frames are shown to detectors.

    ``upscale`` and ``canvas``: each frame is enlarged ``upscale`` times and centred on a
    black ``canvas``-pixel square, because RetinaFace and MediaPipe's face detector both
    miss faces that fill a small image edge to edge; measured on 300 faces of each set,
    (2, 320) for AFLW and (4, 320) for FER find as many faces as larger canvases."""

    name: str
    path: Path
    frame: int
    upscale: int
    canvas: int
    columns: tuple[str, ...]

    def rows(self) -> int:
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path).metadata.num_rows

    def read(self, start: int = 0, stop: int | None = None, images: bool = True) -> dict:
        """Rows [start, stop) as numpy arrays: ``name``, ``image`` (N, F, F, 3) when asked,
        and per set ``yaw`` + ``pts21`` (AFLW, crop pixels, NaN unplaced) or ``emotion``."""
        import pyarrow.parquet as pq

        cols = list(self.columns) + (["jpeg"] if images else [])
        stop = self.rows() if stop is None else stop
        t = pq.read_table(self.path, columns=cols).slice(start, stop - start)
        out = {"name": np.array(t.column("name").to_pylist(), dtype=str)}
        if images:
            out["image"] = np.stack([decode(b) for b in t.column("jpeg").to_pylist()]) if len(t) \
                else np.zeros((0, self.frame, self.frame, 3), np.uint8)
        if "yaw_deg" in self.columns:
            out["yaw"] = t.column("yaw_deg").to_numpy().astype(np.float64)
            roi = np.array(t.column("roi").to_pylist(), np.float64).reshape(-1, 4)
            out["pts21"] = aflw_points(np.array(t.column("pts21").to_pylist(), np.float64).reshape(-1, 42),
                                       roi, self.frame)
        if "label" in self.columns:
            out["emotion"] = np.array(t.column("label").to_pylist(), dtype=str)
        return out


AFLW = WildSet("aflw", AFLW_PATH, 120, 2, 320, ("name", "yaw_deg", "pts21", "roi"))
FER = WildSet("fer", FER_PATH, 48, 4, 320, ("name", "label"))
SETS = {s.name: s for s in (AFLW, FER)}
