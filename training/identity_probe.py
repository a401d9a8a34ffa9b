"""Is identity visible, and does the network see it? (``python -m training.identity_probe``)

The shipped network's identity output stays near the mean face. This separates the two
possible reasons with linear probes, ridge regressions fitted on training renders and
scored on held-out ones:

* an *oracle* probe from the true 68 projected landmarks and the true rotation: if even
  that fails, identity is not recoverable from the image's geometry at this resolution;
* a *feature* probe from the network's pooled trunk features: if the oracle succeeds and
  this fails, the trunk does not encode what identity needs (a training problem, not a
  data one).

Scores: mean 3D distance (mm) at the 68 landmark vertices, against predicting the mean
face, and Pearson r of the first five identity modes.
"""
from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data import FIELDS, AugmentConfig, augment, sample_batch
from training.metrics import identity_basis
from workers import checkpoint, face_model
from workers.mirror import blend_mirror
from workers.networks import FaceRegressor


def _inputs(model: FaceRegressor, size: int, path: str, n: int) -> dict[str, np.ndarray]:
    """Pooled trunk features, true landmarks + rotation, and alpha of the first n renders."""
    fm = face_model.load()
    perm, b2e = blend_mirror(fm.blend_names), torch.from_numpy(fm.blend_to_eta)
    d = np.load(path)
    data = {k: d[k][:n] for k in FIELDS}
    rng = np.random.default_rng(0)
    out: dict[str, list] = {"features": [], "landmarks": [], "alpha": []}
    for i in range(0, len(data["crop"]), 100):
        idx = np.arange(i, min(i + 100, len(data["crop"])))
        x, lab = augment(sample_batch(data, idx), size, rng, AugmentConfig(), perm, b2e, train=False)
        with torch.no_grad():
            out["features"].append(model.pooled(x).numpy())
        out["landmarks"].append(np.concatenate([lab["lm"].flatten(1).numpy(), lab["R"].flatten(1).numpy()], 1))
        out["alpha"].append(lab["shape"].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def ridge(x_fit: np.ndarray, y_fit: np.ndarray, x: np.ndarray, lam: float) -> np.ndarray:
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
    a = (x_fit - mu) / sd
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y_fit - y_fit.mean(0)))
    return (x - mu) / sd @ w + y_fit.mean(0)


def landmark_mm(alpha: np.ndarray, truth: np.ndarray) -> float:
    basis = identity_basis(face_model.load()).numpy()           # (99, 68, 3) cm
    return float(np.linalg.norm(np.einsum("na,akc->nkc", alpha - truth, basis), axis=-1).mean() * 10)


def probe(ckpt: Path, fit: list[str], held_out: str, per_shard: int,
          lams: tuple[float, ...] = (10.0, 100.0, 1000.0)) -> dict:
    model, meta = checkpoint.load(ckpt)
    model.eval()
    size = int(meta["crop"]["size"])
    parts = [_inputs(model, size, f, per_shard) for f in fit]
    train = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    test = _inputs(model, size, held_out, 10 ** 9)
    truth = test["alpha"]
    res: dict[str, Any] = {"fit_renders": len(train["alpha"]), "held_out_renders": len(truth),
           "mean_face_mm": landmark_mm(np.zeros_like(truth), truth)}
    for name in ("landmarks", "features"):
        best: dict[str, Any] | None = None
        for lam in lams:
            pred = ridge(train[name], train["alpha"], test[name], lam)
            row: dict[str, Any] = {"lambda": lam, "mm": landmark_mm(pred, truth),
                   "r_first5": [round(float(np.corrcoef(pred[:, k], truth[:, k])[0, 1]), 3) for k in range(5)]}
            best = row if best is None or row["mm"] < best["mm"] else best
        res[{"landmarks": "oracle_true_landmarks_and_rotation", "features": "network_trunk_features"}[name]] = best
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path())
    ap.add_argument("--fit", nargs="+", default=sorted(glob.glob("data/synth/train-*.npz"))[:6],
                    help="training render shards to fit the probes on")
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--held-out", default="data/synth/val-0000.npz")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    print(json.dumps(probe(args.checkpoint, args.fit, args.held_out, args.per_shard), indent=1))


if __name__ == "__main__":
    main()
