"""The measures of a network's output against labels, shared by training and evaluation.

Training logs them on its held-out set every few hundred steps, ``facestream evaluate``
reports them, the plots draw them: one module, so that every number called "pose MAE"
or "eta RMSE" is computed the same way, and the scripts that use them need not import
one another.
"""
from __future__ import annotations

import numpy as np
import torch

from training.data import AugmentConfig, augment, sample_batch
from workers import face_model
from workers.mirror import blend_mirror
from workers.pose import angle_error, euler_from_matrix, plausible_euler
from workers.regressor import decode

# a batch of predictions or labels, by name, one row per face
Arrays = dict[str, np.ndarray]

READABLE = {"jawOpen": ["jawOpen"], "smile": ["mouthSmile_L", "mouthSmile_R"],
            "blink": ["eyeBlink_L", "eyeBlink_R"], "browUp": ["browInnerUp_L", "browInnerUp_R"]}


def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-12)


@torch.no_grad()
def predict_samples(model: torch.nn.Module, data: dict, size: int,
                    device: torch.device | str = "cpu") -> tuple[Arrays, Arrays]:
    """Run the network on un-augmented inputs; returns (predictions, labels) as numpy."""
    fm = face_model.load()
    perm, b2e = blend_mirror(fm.blend_names), torch.from_numpy(fm.blend_to_eta)
    rng = np.random.default_rng(0)
    preds, labs = [], []
    for i in range(0, len(data["crop"]), 128):
        idx = np.arange(i, min(i + 128, len(data["crop"])))
        x, lab = augment(sample_batch(data, idx), size, rng, AugmentConfig(), perm, b2e, train=False,
                         device=device)
        p = decode(model(x), size)
        preds.append(p)
        labs.append({k: v.numpy() for k, v in lab.items()})
    P = {k: np.concatenate([getattr(p, k) for p in preds]) for k in ("expression", "euler", "shape", "landmarks")}
    L = {k: np.concatenate([lb[k] for lb in labs]) for k in labs[0]}
    L["euler"] = np.array([euler_from_matrix(r) for r in L["R"]])
    L["landmarks"] = (L["lm"] + 1) / 2 * size
    return P, L


def pose_metrics(P: Arrays, L: Arrays) -> dict:
    """Pose MAE per axis, each rotation written in its plausible form (workers/pose.py)."""
    e = angle_error(plausible_euler(P["euler"]), plausible_euler(L["euler"]))
    return {"yaw_mae": float(e[:, 0].mean()), "pitch_mae": float(e[:, 1].mean()),
            "roll_mae": float(e[:, 2].mean()), "mean_mae": float(e.mean()), "n": int(len(e))}


def expression_metrics(P: Arrays, L: Arrays) -> dict:
    err = P["expression"] - L["eta"]
    return {"eta_rmse": float(np.sqrt((err ** 2).mean())),
            "eta_rmse_per_component": np.sqrt((err ** 2).mean(0)).round(4).tolist(),
            "eta_corr_per_component": corr(P["expression"], L["eta"]).round(3).tolist(),
            "eta_label_std_per_component": L["eta"].std(0).round(4).tolist()}


def readable_agreement(P: Arrays, L: Arrays) -> dict:
    fm = face_model.load()
    idx = {n: i for i, n in enumerate(fm.blend_names)}
    bp = fm.blendshapes_from_eta(P["expression"])
    bt = fm.blendshapes_from_eta(L["eta"])
    out = {}
    for name, parts in READABLE.items():
        j = [idx[p] for p in parts]
        out[name] = float(corr(bp[:, j].mean(1, keepdims=True), bt[:, j].mean(1, keepdims=True))[0])
    return out


def shape_metrics(P: Arrays, L: Arrays) -> dict:
    """Identity: coefficient RMSE, correlation of the first components, and the error it
    makes in millimetres on the 68 landmark vertices against the mean face's.

    Most of the 99 modes move the surface by well under a pixel of a 128 px crop (mode 10:
    0.5 mm RMS), so their best estimate is 0 and a coefficient RMSE near the label s.d. is
    expected; the millimetre error says how much of the visible shape is recovered."""
    basis = identity_basis(face_model.load()).numpy().reshape(99, -1)   # (99, 68·3), cm
    rms_mm = lambda a: float(np.sqrt(((a @ basis).reshape(len(a), 68, 3) ** 2).sum(-1).mean()) * 10)
    err = P["shape"] - L["shape"]
    return {"alpha_rmse": float(np.sqrt((err ** 2).mean())), "alpha_label_std": float(L["shape"].std()),
            "alpha_corr_first5": corr(P["shape"][:, :5], L["shape"][:, :5]).round(3).tolist(),
            "landmark_vertex_rmse_mm": rms_mm(err), "mean_face_vertex_rmse_mm": rms_mm(L["shape"])}


YAW_BINS = ((0, 30), (30, 60), (60, 91))


def landmark_nme(P: Arrays, L: Arrays) -> dict:
    """Mean 68-point error normalised two ways, overall and by |yaw|: by the landmark box,
    sqrt(w·h) (AFLW2000-3D's convention), and by the outer-eye-corner distance (300-W's),
    which collapses towards profile and then inflates the mean."""
    true = L["landmarks"]
    err = np.linalg.norm(P["landmarks"] - true, axis=2).mean(1)
    box = np.sqrt(np.prod(true.max(1) - true.min(1), axis=1))
    iod = np.linalg.norm(true[:, 36] - true[:, 45], axis=1)
    by_box, by_iod = err / np.maximum(box, 1e-6), err / np.maximum(iod, 1e-6)
    yaw = np.abs(L["euler"][:, 0])
    bins = {f"{lo}-{min(hi, 90)}": (yaw >= lo) & (yaw < hi) for lo, hi in YAW_BINS}
    return {"box": float(by_box.mean()), "iod": float(by_iod.mean()), "error_px": float(err.mean()),
            "box_by_abs_yaw": {k: float(by_box[m].mean()) for k, m in bins.items() if m.any()},
            "iod_by_abs_yaw": {k: float(by_iod[m].mean()) for k, m in bins.items() if m.any()}}


def identity_basis(fm: face_model.FaceModel) -> torch.Tensor:
    """(99, 68, 3): each identity mode's displacement of the 68 landmark vertices, cm."""
    return torch.from_numpy(np.ascontiguousarray(fm.identity[:, fm.landmarks68])).float()
