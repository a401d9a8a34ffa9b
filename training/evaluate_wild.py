"""The in-the-wild held-out split of ``facestream evaluate``.

The held-out talking-head clips said the model was within 4 degrees of its teacher, while
on real faces in the wild it was twice as wrong as the teacher: clips of six near-frontal
people cannot show it. These numbers are measured on the faces that would have shown it,
the held-out images of the in-the-wild label files (``data/labels/{aflw,fer}_heldout.npz``,
split by image name, never trained on; training/wild_labels.py, docs/teachers.md).

AFLW (faces at every yaw, with AFLW's own yaw and hand-placed points), by AFLW's |yaw|
bin (0-30, 30-60, 60-90; faces annotated beyond 90 count in the last bin, as in
docs/teachers.md) and over all faces:

* the model's yaw error against AFLW's yaw: the one annotation no teacher made;
* its pose error (yaw, pitch, roll) against the teacher label it was trained towards;
* its landmark NME on the AFLW points that have an iBUG-68 counterpart (14 of the 21,
  wild_data.AFLW21_TO_68) and on the eight the teacher table uses (wild_data.COMMON68),
  with docs/teachers.md's normaliser (the 3DDFA_V2 box side, AFLW crop side / 1.58), so
  the numbers sit beside that table; only points AFLW placed count;
* the teachers on the same faces: MediaPipe (the share it finds, its yaw error on those,
  and the model's yaw error on exactly those faces: the fair comparison) and 3DDFA_V2,
  which labels every face (yaw error, NME).

Angles are compared in one decomposition: every rotation has two (yaw, pitch, roll)
triplets, and the network's decoder (workers.pose.euler_from_matrix) always returns the
one with |yaw| <= 90, so a face AFLW annotates at yaw 100 (4% of the held-out faces) would
read yaw 80, pitch and roll near 180 even when predicted exactly. Each triplet, the
model's, the label's and the teachers', is taken in the form whose pitch and roll are
nearer zero (``plausible_euler``): the one a head can have.

FER2013 (held-out part of its training split: seven emotions): how well the predicted
29-D expression separates emotions, the seed's claim for 3DMM expression coefficients.
5-nearest-neighbour classification, leave-one-out over the held-out faces, on features
standardised over that set (z-scores; an unsupervised step, so it leaks no label),
Euclidean distance, ties broken by the nearest neighbour. Accuracy and macro-F1, beside
the same for MediaPipe's blendshapes and for the teacher's expression (the blendshapes
mapped to eta) on the faces MediaPipe labelled, and for the model on those same faces.
FER2013 names no subjects, so this split is image-disjoint, not subject-disjoint.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training.data import CTX_FACTOR, context_rule, real_to_samples
from training.metrics import predict_samples
from training.teacher_3ddfa import ROI_SIDE
from training.teacher_check import nme
from training.wild_data import AFLW, AFLW21_TO_68, COMMON68, EMOTIONS, YAW_BINS, yaw_bin
from workers.crops import CropRule, crop_affines
from workers.pose import angle_error, plausible_euler

if TYPE_CHECKING:
    import torch

AFLW14 = tuple(sorted(AFLW21_TO_68))                        # AFLW indices with an iBUG-68 twin
AFLW_FACE_PX = AFLW.frame / ROI_SIDE                        # face size in AFLW crop pixels (76)
EXTRA = ("euler", "euler_mediapipe", "euler_3ddfa", "lm68_3ddfa", "aflw_yaw", "aflw_pts21", "box",
         "box_source", "blend", "blend_mask", "emotion")
K = 5


def load(path: Path) -> tuple[dict, dict]:
    """(training-layout samples, per-face extras) of the faces a label file keeps."""
    d = np.load(path)
    keep = d["keep"]
    extra = {k: d[k][keep] for k in EXTRA if k in d.files}
    extra["ctx"] = int(d["crop"].shape[1])
    return real_to_samples(path), extra


def input_to_context(p: np.ndarray, size: int, ctx: int) -> np.ndarray:
    """Network-input pixels -> context-crop pixels. Un-augmented, the network sees the
    centre 1/CTX_FACTOR of the context crop (data.augment with train=False)."""
    return ((np.asarray(p, np.float64) / size * 2 - 1) / CTX_FACTOR + 1) / 2 * ctx


def face_px_in_context(box: np.ndarray, ctx: int, rule: CropRule = CropRule()) -> np.ndarray:
    """docs/teachers.md's face size (AFLW crop side / 1.58) in context-crop pixels, per face:
    the label builder cut each context crop around ``box`` (AFLW crop pixels) with the
    default crop rule enlarged for context, so one context pixel is that many crop pixels."""
    frame_per_ctx = crop_affines(box, context_rule(rule, ctx))[:, 0, 0]
    return AFLW_FACE_PX / frame_per_ctx


def _mean(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def bins(yaw: np.ndarray) -> dict[str, np.ndarray]:
    """Masks per |yaw| bin of wild_data.YAW_BINS, then ``all``."""
    b = yaw_bin(yaw)
    return {**{label: b == k for k, (label, *_r) in enumerate(YAW_BINS)}, "all": np.ones(len(b), bool)}


def aflw_metrics(pred_euler: np.ndarray, pred_lm68_ctx: np.ndarray, ex: dict,
                 face: np.ndarray) -> tuple[dict, dict]:
    """The AFLW numbers (module docstring) from the model's predictions.

    ``pred_lm68_ctx`` and the extras' points (``ex``, from ``load``) are in context-crop
    pixels; ``face``: per face, the NME normaliser in those pixels (face_px_in_context).
    Returns (JSON-ready numbers keyed by bin, per-face arrays for the plot)."""
    aflw_yaw = ex["aflw_yaw"].astype(np.float64)
    face = np.broadcast_to(np.asarray(face, np.float64), aflw_yaw.shape)
    truth14 = ex["aflw_pts21"][:, list(AFLW14)].astype(np.float64)
    ids14 = [AFLW21_TO_68[a] for a in AFLW14]
    common = [ids14.index(j) for j in COMMON68]

    def nmes(lm68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n14 = nme(lm68[:, ids14], truth14, 1.0) / face
        n8 = nme(lm68[:, list(COMMON68)], truth14[:, common], 1.0) / face
        # faces with no placed point among the set have no NME, not 0
        n14[~np.isfinite(truth14[..., 0]).any(1)] = np.nan
        n8[~np.isfinite(truth14[:, common, 0]).any(1)] = np.nan
        return n14, n8

    m14, m8 = nmes(np.asarray(pred_lm68_ctx, np.float64))
    d14, d8 = nmes(ex["lm68_3ddfa"].astype(np.float64))
    pred_euler = plausible_euler(pred_euler)
    yaw_m = angle_error(pred_euler[:, 0], aflw_yaw)
    pose = angle_error(pred_euler, plausible_euler(ex["euler"]))
    mp_yaw = plausible_euler(ex["euler_mediapipe"])[:, 0]
    found = np.isfinite(mp_yaw)
    yaw_mp = np.where(found, angle_error(np.nan_to_num(mp_yaw), aflw_yaw), np.nan)
    dd_yaw = plausible_euler(ex["euler_3ddfa"])[:, 0]
    yaw_dd = angle_error(dd_yaw, aflw_yaw)
    # RetinaFace's find rate (the label builder ran it on each face, wild_teach.py): what
    # `predict` would miss; the model is scored on every face, with a fallback box there
    detected = None if "box_source" not in ex else np.asarray(ex["box_source"]).astype(str) == "retinaface"

    out = {}
    for label, m in bins(aflw_yaw).items():
        f = m & found
        out[label] = {
            "faces": int(m.sum()),
            "model": {"yaw_mae_vs_aflw": _mean(yaw_m[m]),
                      "yaw_mae_vs_aflw_on_mediapipe_faces": _mean(yaw_m[f]),
                      "pose_mae_vs_label": {**{a: _mean(pose[m, i]) for i, a in enumerate(("yaw", "pitch", "roll"))},
                                            "mean": _mean(pose[m])},
                      "nme_aflw14": _mean(m14[m]), "nme_common8": _mean(m8[m]),
                      "detector_found": None if detected is None or not m.any() else float(detected[m].mean())},
            "mediapipe": {"found": float(found[m].mean()) if m.any() else None, "faces_found": int(f.sum()),
                          "yaw_mae_vs_aflw": _mean(yaw_mp[f])},
            "3ddfa_v2": {"yaw_mae_vs_aflw": _mean(yaw_dd[m]), "nme_aflw14": _mean(d14[m]),
                         "nme_common8": _mean(d8[m])},
        }
    arrays = {"aflw_yaw": aflw_yaw, "model_yaw": pred_euler[:, 0], "mediapipe_yaw": mp_yaw, "3ddfa_yaw": dd_yaw}
    return out, arrays


# ------------------------------------------------------------------ emotion separability

def standardise(X: np.ndarray) -> np.ndarray:
    """Z-scores per feature over the set; constant features become 0 (they carry nothing)."""
    X = np.asarray(X, np.float64)
    sd = X.std(0)
    return (X - X.mean(0)) / np.where(sd > 1e-12, sd, 1.0)


def knn_loo(X: np.ndarray, y: np.ndarray, k: int = K) -> np.ndarray:
    """Leave-one-out k-NN predictions (Euclidean on X as given). The vote goes to the most
    frequent class among the k nearest other faces; a tie to the tied class met first
    going outwards from the face (deterministic, no random draw)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y)
    classes, yi = np.unique(y, return_inverse=True)
    k = min(k, len(X) - 1)
    sq = (X * X).sum(1)
    pred = np.empty(len(X), np.int64)
    for a in range(0, len(X), 1024):
        d = sq[a:a + 1024, None] + sq[None] - 2 * X[a:a + 1024] @ X.T
        d[np.arange(len(d)), np.arange(a, a + len(d))] = np.inf          # leave the face out
        near = np.argpartition(d, k, axis=1)[:, :k]
        near = np.take_along_axis(near, np.argsort(np.take_along_axis(d, near, 1), 1, kind="stable"), 1)
        lab = yi[near]                                                   # (n, k), nearest first
        counts = np.stack([(lab == c).sum(1) for c in range(len(classes))], 1)
        top = counts == counts.max(1, keepdims=True)
        # among the tied classes, the first to appear in the nearest-first list
        first = np.where(top[np.arange(len(lab))[:, None], lab], np.arange(k), k).argmin(1)
        pred[a:a + len(d)] = lab[np.arange(len(lab)), first]
    return classes[pred]


def macro_f1(y: np.ndarray, p: np.ndarray) -> tuple[float, dict]:
    """Mean F1 over the classes in ``y`` or ``p``, and F1 per class."""
    per = {}
    for c in np.unique(np.concatenate([y, p])):
        tp = np.sum((p == c) & (y == c))
        denom = np.sum(p == c) + np.sum(y == c)
        per[str(c)] = float(2 * tp / denom) if denom else 0.0
    return float(np.mean(list(per.values()))), per


def pack_bits(flags: np.ndarray) -> str:
    """Per-face booleans as a short string (bits, base64) that JSON carries."""
    return base64.b64encode(np.packbits(np.asarray(flags, bool)).tobytes()).decode()


def unpack_bits(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))[:n].astype(bool)


def separability(X: np.ndarray, y: np.ndarray, k: int = K) -> dict:
    """k-NN (leave-one-out, standardised features) accuracy and macro-F1 of labels ``y``,
    with the accuracy's binomial standard error: on a few thousand faces it is about 0.01,
    the size of the differences between one set of weights and the next, so a comparison
    that ignores it reads noise as progress. ``correct`` (packed, ``unpack_bits``) says
    which faces were right, in the label file's order: two sets of weights read on the same
    faces are compared face by face (training/compare.py), which is far less noisy
    than two accuracies each with its own standard error."""
    p = knn_loo(standardise(X), y, k)
    f1, per = macro_f1(np.asarray(y), p)
    acc = float(np.mean(p == y))
    return {"n": int(len(y)), "dims": int(np.shape(X)[1]), "accuracy": acc,
            "accuracy_se": float(np.sqrt(acc * (1 - acc) / max(len(y), 1))), "macro_f1": f1, "f1_per_class": per,
            "correct": pack_bits(p == np.asarray(y))}


def emotion_metrics(eta_pred: np.ndarray, eta_teacher: np.ndarray, blend: np.ndarray,
                    teacher_mask: np.ndarray, emotion: np.ndarray) -> dict:
    """Separability of the model's eta (all faces, and the faces MediaPipe labelled) beside
    MediaPipe's blendshapes and the teacher's eta on those faces, with the chance levels."""
    emotion = np.asarray(emotion)
    m = np.asarray(teacher_mask, bool)
    share = np.array([np.mean(emotion == c) for c in EMOTIONS])
    return {
        "protocol": f"{K}-NN, leave-one-out, z-scored features, Euclidean; image-disjoint held-out split",
        "classes": list(EMOTIONS), "counts": {c: int(np.sum(emotion == c)) for c in EMOTIONS},
        "chance": {"majority": float(share.max()), "prior_matched": float((share ** 2).sum())},
        "model_eta": separability(eta_pred, emotion),
        "model_eta_on_mediapipe_faces": separability(eta_pred[m], emotion[m]),
        "mediapipe_blendshapes": separability(blend[m], emotion[m]),
        "teacher_eta": separability(eta_teacher[m], emotion[m]),
    }


# ------------------------------------------------------------------ running a model

def evaluate_aflw(model: torch.nn.Module, size: int, path: Path) -> tuple[dict, dict]:

    data, ex = load(path)
    P, _ = predict_samples(model, data, size)
    res, arrays = aflw_metrics(P["euler"], input_to_context(P["landmarks"], size, ex["ctx"]), ex,
                               face_px_in_context(ex["box"], ex["ctx"]))
    return {"file": str(path), "faces": int(len(ex["aflw_yaw"])),
            "nme_normaliser": "AFLW crop side / 1.58 (docs/teachers.md), percent; points AFLW placed",
            "yaw_bins": res}, arrays


def evaluate_emotion(model: torch.nn.Module, size: int, path: Path) -> dict:

    data, ex = load(path)
    P, L = predict_samples(model, data, size)
    return {"file": str(path), **emotion_metrics(P["expression"], L["eta"], ex["blend"], ex["blend_mask"],
                                                 ex["emotion"])}


def markdown(res: dict) -> str:
    """The AFLW numbers as one table (rows: bins), for the terminal and docs/accuracy.md."""
    f = lambda v, spec=".1f": "-" if v is None else format(v, spec)
    rows = ["| \\|yaw\\| (AFLW) | faces | RetinaFace finds | yaw MAE vs AFLW | pose MAE vs label (y/p/r, mean) | "
            "NME % 14 pt | NME % 8 pt | MediaPipe finds | yaw MAE MediaPipe / model (same faces) | "
            "yaw MAE 3DDFA_V2 | NME % 3DDFA_V2 14 / 8 pt |", "|" + "---|" * 11]
    for label, r in res["yaw_bins"].items():
        mo, mp, dd = r["model"], r["mediapipe"], r["3ddfa_v2"]
        p = mo["pose_mae_vs_label"]
        rows.append(
            f"| {label} | {r['faces']} | {f(mo.get('detector_found'), '.1%')} | {f(mo['yaw_mae_vs_aflw'])} | "
            f"{f(p['yaw'])} / {f(p['pitch'])} / "
            f"{f(p['roll'])}, {f(p['mean'])} | {f(mo['nme_aflw14'], '.2f')} | {f(mo['nme_common8'], '.2f')} | "
            f"{f(mp['found'], '.1%')} | {f(mp['yaw_mae_vs_aflw'])} / {f(mo['yaw_mae_vs_aflw_on_mediapipe_faces'])} | "
            f"{f(dd['yaw_mae_vs_aflw'])} | {f(dd['nme_aflw14'], '.2f')} / {f(dd['nme_common8'], '.2f')} |")
    return "\n".join(rows)


def emotion_markdown(res: dict) -> str:
    rows = ["| features (FER2013 held out) | faces | dims | 5-NN accuracy (± s.e.) | macro-F1 |",
            "|---|---|---|---|---|"]
    names = {"model_eta": "model eta, all faces", "model_eta_on_mediapipe_faces": "model eta, MediaPipe's faces",
             "mediapipe_blendshapes": "MediaPipe blendshapes", "teacher_eta": "teacher eta (blendshapes -> eta)"}
    for key, name in names.items():
        r = res[key]
        rows.append(f"| {name} | {r['n']} | {r['dims']} | {r['accuracy']:.3f} ± {r['accuracy_se']:.3f} "
                    f"| {r['macro_f1']:.3f} |")
    c = res["chance"]
    rows.append(f"| chance: majority class / prior-matched guess | | "
                f"| {c['majority']:.3f} / {c['prior_matched']:.3f} | |")
    return "\n".join(rows)
