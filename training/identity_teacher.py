"""The teacher of who is who, and the pieces every identity fit shares.

AFLW names nobody, so who looks like whom comes from dlib's ResNet face embedding
(``dlib_face_recognition_resnet_model_v1``, CC0 weights inside ``face_recognition_models``):
:func:`teacher` finds each AFLW face with the service's RetinaFace (the crop as detectors see
it, :func:`canvas`) and embeds it once, in resumable parts beside ``TEACHER_CACHE`` (about 25
minutes on 2 cores). :func:`relational_loss` makes a batch's alpha similarities match the
teacher's as distributions (relational distillation: alpha learns which faces dlib thinks
alike, not dlib's coordinates, which would not be shapes); :func:`shape_distance_cm` keeps
alpha a face shape on renders with exact labels; :func:`validate` scores a fit on AFLW's
held-out tenth and the ``val`` renders; :func:`resign_sidecars` carries over what was fitted
on outputs a fit did not change.

training/identity_branch.py is the fit that ships. The linear read-out of the trunk it
replaced (2026-12-07, docs/accuracy.md "Identity shape") lived here:
``git show 32f6749:training/identity_shape.py``.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from training.wild_data import AFLW
from workers import checkpoint, face_model

TEACHER_CACHE = Path("data/labels/aflw_identity.npz")
PART_ROWS = 500          # AFLW rows per teacher part (one resumable unit)
TAU_TEACHER = 0.05       # teacher softmax temperature over dlib's cosine similarities
CANVAS, UPSCALE = 320, 2  # how AFLW's 120-px crops are shown to the detector (training.wild_data.AFLW)


# ----------------------------------------------------------------------------- the teacher

def canvas(crop: np.ndarray) -> np.ndarray:
    """An AFLW crop as detectors see it: enlarged UPSCALE times, centred on a black square."""
    import cv2

    side = crop.shape[0] * UPSCALE
    big = cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    o = (CANVAS - side) // 2
    out[o:o + side, o:o + side] = big
    return out


def _teacher_part(job: tuple[int, int, str]) -> str:
    """RetinaFace box (largest face) and dlib embedding of AFLW rows [start, stop)."""
    import cv2

    from streamer.config import DetectorConfig
    from workers.detector import FaceDetector
    from workers.identity import FaceIdentity, IdentityCropRule

    start, stop, out = job
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    detector = FaceDetector(DetectorConfig(batch_size=1), threads=1)
    ident, rule = FaceIdentity(), IdentityCropRule()
    rows = AFLW.read(start, stop)
    keep, boxes, emb = [], [], []
    images = [canvas(c) for c in rows["image"]]
    for i, (image, det) in enumerate(zip(images, detector.detect(images))):
        if not len(det):
            continue
        area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
        box = det.boxes[int(np.argmax(area))].astype(np.float64)
        keep.append(start + i)
        boxes.append(box)
        emb.append(ident.embed(rule.cut(image, box[None]))[0])
    np.savez(out, index=np.array(keep, np.int64), box=np.array(boxes).reshape(-1, 4),
             emb=np.array(emb, np.float32).reshape(-1, 128), name=rows["name"][np.array(keep, np.int64) - start])
    return out


def teacher(cache: Path = TEACHER_CACHE, jobs: int = 2) -> dict:
    """Every AFLW face's box and dlib embedding, computed once (parts beside ``cache``)."""
    if cache.exists():
        return dict(np.load(cache))
    parts_dir = cache.with_suffix(".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    n = AFLW.rows()
    todo = [(s, min(s + PART_ROWS, n), str(parts_dir / f"{s:06d}.npz")) for s in range(0, n, PART_ROWS)]
    todo = [j for j in todo if not Path(j[2]).exists()]
    print(f"teacher: {len(todo)} parts of {PART_ROWS} AFLW faces to embed", flush=True)
    with get_context("spawn").Pool(jobs) as pool:
        for done in pool.imap_unordered(_teacher_part, todo):
            print(f"  {done}", flush=True)
    parts = [np.load(p) for p in sorted(parts_dir.glob("*.npz"))]
    table = {k: np.concatenate([p[k] for p in parts]) for k in parts[0].files}
    np.savez(cache, index=table["index"], box=table["box"], emb=table["emb"], name=table["name"])
    return table


# ----------------------------------------------------------------------------- renders

def render_inputs(meta: dict, pattern: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of renders as the network sees them (un-augmented) and their exact alpha."""
    from training.data import AugmentConfig, augment, sample_batch
    from training.train import load_synth
    from workers.mirror import blend_mirror

    data, n = load_synth([pattern])
    if data is None:
        raise SystemExit(f"no renders match {pattern!r}; make them with `python -m training.synth` (Makefile)")
    fm = face_model.load()
    perm, b2e = blend_mirror(fm.blend_names), torch.from_numpy(fm.blend_to_eta)
    rng = np.random.default_rng(0)
    size = int(meta["crop"]["size"])
    for i in range(0, len(data["crop"]), 128):
        idx = np.arange(i, min(i + 128, len(data["crop"])))
        x, lab = augment(sample_batch(data, idx), size, rng, AugmentConfig(), perm, b2e, train=False)
        yield x, lab["shape"].float()


# ----------------------------------------------------------------------------- losses and checks

def shape_distance_cm(a: torch.Tensor, b: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Per-sample mean 3-D distance (cm) at the 68 landmark vertices between two alphas."""
    return torch.einsum("na,akc->nkc", a - b, basis).norm(dim=-1).mean(1)


def relational_loss(a0: torch.Tensor, a1: torch.Tensor, teacher: torch.Tensor, log_scale: torch.Tensor,
                    tau: float = TAU_TEACHER) -> torch.Tensor:
    """Cross-entropy between the teacher's and alpha's similarity distributions over a batch:
    rows are faces (alpha ``a0``), columns the batch's mirror images (``a1``); ``teacher``
    is unit embeddings, each face its own mirror image's person."""
    n0 = torch.nn.functional.normalize(a0, dim=1)
    n1 = torch.nn.functional.normalize(a1, dim=1)
    q = torch.log_softmax(n0 @ n1.T * log_scale.exp(), 1)
    t = teacher @ teacher.T
    t.fill_diagonal_(1.0)
    p = torch.softmax(t / tau, 1)
    return -(p * q).sum(1).mean()


def _auc(same: np.ndarray, diff: np.ndarray) -> float:
    same, diff = np.sort(same), np.sort(diff)
    below = np.searchsorted(same, diff, side="left")
    ties = np.searchsorted(same, diff, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(same) * len(diff)))


@torch.no_grad()
def validate(head: torch.nn.Module, f0: torch.Tensor, f1: torch.Tensor, emb: np.ndarray,
             val_f: torch.Tensor, val_alpha: torch.Tensor, basis: torch.Tensor, seed: int = 1) -> dict:
    """Numbers on data the fit did not see: AFLW's held-out faces (rank correlation of
    alpha's pair similarities with the teacher's; a face against its mirror image vs other
    faces, AUC) and the ``val`` renders (shape error against the mean face's)."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    a0 = torch.nn.functional.normalize(head(f0), dim=1).numpy()
    a1 = torch.nn.functional.normalize(head(f1), dim=1).numpy()
    i, j = rng.integers(0, len(a0), 20000), rng.integers(0, len(a0), 20000)
    other = i != j
    i, j = i[other], j[other]
    cos_pairs = (a0[i] * a0[j]).sum(1)
    return {
        "heldout_faces": int(len(a0)),
        "teacher_rank_corr": float(spearmanr(cos_pairs, (emb[i] * emb[j]).sum(1)).correlation),
        "mirror_pair_auc": _auc(1 - (a0 * a1).sum(1), 1 - cos_pairs),
        "val_renders_shape_mm": float(shape_distance_cm(head(val_f), val_alpha, basis).mean() * 10),
        "val_renders_mean_face_mm": float(shape_distance_cm(torch.zeros_like(val_alpha), val_alpha, basis).mean() * 10),
    }


# ----------------------------------------------------------------------------- export

SIGNED_SIDECARS = ("emotion", "presence", "emotion-branch")


def resign_sidecars(src: Path, path: Path) -> None:
    """Copy the sidecars fitted on ``src``'s unchanged outputs (the emotion classifier, the
    presence probe, the emotion branch) beside ``path``, signed for its weights. The caller
    has checked that every tensor they read kept its bits."""
    import shutil

    old_sha = checkpoint.weights_sha256(src)
    for kind in SIGNED_SIDECARS:
        side = checkpoint.sidecar_path(src, kind)
        if not side.exists():
            continue
        d = json.loads(side.read_text())
        if (d.get("network") or {}).get("weights_sha256") != old_sha:   # stale already: refit, as loading says
            print(f"{side} was not fitted on {src}: left as it is (refit it)")
            continue
        tensors, new_side = side.with_suffix(".safetensors"), checkpoint.sidecar_path(path, kind)
        if tensors.exists() and tensors != new_side.with_suffix(".safetensors"):
            shutil.copyfile(tensors, new_side.with_suffix(".safetensors"))
        d["network"] = {**d["network"], "weights_sha256": checkpoint.weights_sha256(path),
                        "carried_over_from_sha256": old_sha}
        checkpoint.write_meta(new_side, d)
