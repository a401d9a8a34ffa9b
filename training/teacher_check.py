"""How good are the two teachers on real faces? Checked against AFLW's own annotations.

On every AFLW crop, by |yaw| bin (AFLW's yaw): how often RetinaFace and MediaPipe find
the face; each teacher's yaw error against AFLW's yaw; each teacher's landmark error
against AFLW's hand-placed points on the iBUG-68 points all three share
(wild_data.COMMON68: eye corners, nose tip, mouth corners, chin), in percent of the face
size (the 3DDFA box side, crop side / 1.58); and how far the box fallback for missed
detections lands from RetinaFace's box where there is one.

MediaPipe is scored on the faces it finds, 3DDFA_V2 on the same faces (a fair pair) and on
all faces. AFLW's yaw is itself a fit of a mean face to 21 points (5.5 degrees from a dense
3DMM fit on average), so no teacher can score much below that here.

    python -m training.wild_labels --check
"""
from __future__ import annotations

import numpy as np

from training.teacher import PARTIAL68
from training.teacher_3ddfa import ROI_SIDE
from training.wild_data import AFLW, AFLW21_TO_68, COMMON68, YAW_BINS, yaw_bin
from workers.pose import euler_from_matrix


def aflw_common(pts21: np.ndarray) -> np.ndarray:
    """(N, 21, 2) AFLW points -> (N, len(COMMON68), 2), NaN where AFLW placed none."""
    to21 = {v: k for k, v in AFLW21_TO_68.items()}
    return pts21[:, [to21[j] for j in COMMON68]]


def nme(pred: np.ndarray, truth: np.ndarray, face: float) -> np.ndarray:
    """Per face: mean distance over the points AFLW placed, in % of ``face`` pixels."""
    d = np.linalg.norm(pred - truth, axis=-1)
    ok = np.isfinite(d)
    with np.errstate(invalid="ignore"):
        return 100 * np.where(ok, d, 0).sum(1) / np.maximum(ok.sum(1), 1) / face


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def check(raw: dict, ddfa: dict, meta: dict, box_iou: np.ndarray) -> list[dict]:
    """One row per |yaw| bin (and one for all faces) of the numbers described above.

    ``raw``: wild_teach results for AFLW rows; ``ddfa``: wild_teach.ddfa on the same rows;
    ``meta``: AFLW.read(images=False) rows; ``box_iou``: per face, the fallback box's IoU
    with RetinaFace's (NaN where RetinaFace found nothing)."""
    yaw = meta["yaw"]
    found = raw["mp_found"]
    mp_yaw = np.array([euler_from_matrix(r)[0] if f else np.nan for r, f in zip(raw["mp_rot"], found)])
    truth = aflw_common(meta["pts21"])
    face = AFLW.frame / ROI_SIDE
    mp_pts = raw["mp_lm9"][:, [list(PARTIAL68).index(j) for j in COMMON68]]
    nme_mp = np.where(found, nme(mp_pts, truth, face), np.nan)
    nme_dd = nme(ddfa["lm68"][:, list(COMMON68)], truth, face)
    err_mp = np.abs(mp_yaw - yaw)
    err_dd = np.abs(ddfa["euler"][:, 0] - yaw)
    det = np.isfinite(raw["det_box"][:, 0])
    bins = yaw_bin(yaw)
    rows = []
    for k, (label, *_r) in list(enumerate(YAW_BINS)) + [(-1, ("all",))]:
        m = bins == k if k >= 0 else np.ones(len(yaw), bool)
        f = m & found
        rows.append({
            "bin": label, "faces": int(m.sum()),
            "retinaface_found": float(det[m].mean()), "mediapipe_found": float(found[m].mean()),
            "yaw_mae_mediapipe": _mean(err_mp[f]), "yaw_mae_3ddfa_same": _mean(err_dd[f]),
            "yaw_mae_3ddfa_all": _mean(err_dd[m]),
            "mediapipe_off_20": float((err_mp[f] > 20).mean()) if f.any() else float("nan"),
            "nme_mediapipe": _mean(nme_mp[f]), "nme_3ddfa_same": _mean(nme_dd[f]),
            "nme_3ddfa_all": _mean(nme_dd[m]),
            "fallback_box_iou": float(np.nanmedian(box_iou[m])) if np.isfinite(box_iou[m]).any() else float("nan"),
        })
    return rows


COLUMNS = (
    ("bin", "\\|yaw\\| (AFLW)", "{}"), ("faces", "faces", "{}"),
    ("retinaface_found", "RetinaFace finds", "{:.1%}"), ("mediapipe_found", "MediaPipe finds", "{:.1%}"),
    ("yaw_mae_mediapipe", "yaw MAE MediaPipe", "{:.1f}"),
    ("yaw_mae_3ddfa_same", "yaw MAE 3DDFA (same faces)", "{:.1f}"),
    ("yaw_mae_3ddfa_all", "yaw MAE 3DDFA (all)", "{:.1f}"),
    ("mediapipe_off_20", "MediaPipe yaw off > 20°", "{:.1%}"),
    ("nme_mediapipe", "NME % MediaPipe", "{:.2f}"), ("nme_3ddfa_same", "NME % 3DDFA (same faces)", "{:.2f}"),
    ("nme_3ddfa_all", "NME % 3DDFA (all)", "{:.2f}"),
    ("fallback_box_iou", "fallback box IoU (median)", "{:.2f}"),
)


def markdown(rows: list[dict]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(fmt.format(r[k]) for k, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])
