"""Identity shape: refit the 99-D alpha head so that one person's faces agree and different
people's differ, so that alpha can be compared between faces as users expect of an
identity shape.

Trained end to end with the rest of the network, alpha stayed "about the mean face": its
only label is the exact shape of renders, and the renders' identities are few and
synthetic. Verification AUC over the held-out clips was 0.785 (photos 0.595). The trunk
does carry identity: a ridge map from its pooled features to dlib's face embedding
separates the clips' people at 0.90 AUC. The 512-D embedding that every head reads loses
part of it, and averaging the last feature map to one cell loses more (0.91 from 2×2
cells). So the refitted head reads the trunk's features pooled to 2×2 cells
(``ShapeInput.TRUNK_2X2``), and it is fitted with everything else frozen, on two terms:

* **who is who**, on AFLW faces (the 90% that are not held out; ``training.wild_labels.heldout``):
  within a batch, each face's alpha is compared by cosine with the alpha of every face's
  mirror image, and the softmax of those similarities (a learned temperature) is made to
  match the softmax of dlib's embedding similarities (temperature ``TAU_TEACHER``; a face
  and its own mirror image count as one person). This is relational distillation: alpha
  learns which faces dlib thinks alike, not dlib's coordinates, which would not be shapes.
  dlib is the teacher of who is who because AFLW names nobody (docs/training.md).
* **the shape it makes**, on renders with exact alpha: the mean 3-D distance at the 68
  landmark vertices (training/train.py's shape loss), so alpha stays a face shape that
  fits the landmarks; reported on the separate ``val`` renders beside the mean face's.

Only the shape head changes. The emotion classifier (fitted on eta) and the presence probe
(fitted on the embedding) read outputs whose weights keep their bits, which :func:`export`
checks tensor by tensor before it re-signs their sidecars for the new weights file.

Steps (each cached; the teacher step writes parts and resumes):

    python -m training.identity_shape --checkpoint workers/weights/facestream-mb05 \\
        --synth 'data/synth/train-*.npz' --val 'data/synth/val-*.npz'

About 25 minutes of teacher on 2 cores the first time (dlib, ~80 ms a face), then 3.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from training.metrics import identity_basis
from training.wild_data import AFLW
from training.wild_labels import heldout
from workers import checkpoint, face_model
from workers.networks import FaceRegressor, ShapeInput

TEACHER_CACHE = Path("data/labels/aflw_identity.npz")
PART_ROWS = 500          # AFLW rows per teacher part (one resumable unit)
TAU_TEACHER = 0.05       # teacher softmax temperature over dlib's cosine similarities
CANVAS, UPSCALE = 320, 2  # how AFLW's 120-px crops are shown to the detector (training.wild_data.AFLW)


@dataclass(frozen=True)
class FitConfig:
    steps: int = 2000
    batch: int = 256
    lr: float = 1e-3
    w_identity: float = 1.0
    w_shape: float = 1.0
    seed: int = 0


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


# ----------------------------------------------------------------------------- features

@torch.no_grad()
def aflw_features(model: FaceRegressor, meta: dict, table: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """2×2-pooled trunk features of each AFLW face's crop and of its mirror image."""
    from workers.crops import CropRule, crop_faces, to_tensor

    rule = CropRule.from_meta(meta)
    rows = AFLW.read()
    f0, f1 = [], []
    for k in range(0, len(table["index"]), 256):
        crops = np.stack([crop_faces(canvas(rows["image"][i]), box[None], rule)[0][0]
                          for i, box in zip(table["index"][k:k + 256], table["box"][k:k + 256])])
        x = to_tensor(crops, rule)
        f0.append(model.cells(x))
        f1.append(model.cells(x.flip(3)))
    return torch.cat(f0), torch.cat(f1)


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


@torch.no_grad()
def render_features(model: FaceRegressor, meta: dict, pattern: str) -> tuple[torch.Tensor, torch.Tensor]:
    """2×2-pooled trunk features of renders (un-augmented inputs) and their exact alpha."""
    feats, alpha = [], []
    for x, a in render_inputs(meta, pattern):
        feats.append(model.cells(x))
        alpha.append(a)
    return torch.cat(feats), torch.cat(alpha)


# ----------------------------------------------------------------------------- the fit

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


def fit(f0: torch.Tensor, f1: torch.Tensor, emb: torch.Tensor, rf: torch.Tensor, ra: torch.Tensor,
        basis: torch.Tensor, cfg: FitConfig) -> torch.nn.Linear:
    """The shape head (features -> 99) from AFLW faces (``f0``, mirrored ``f1``, teacher
    ``emb``) and renders (features ``rf``, exact alpha ``ra``)."""
    torch.manual_seed(cfg.seed)
    head = torch.nn.Linear(f0.shape[1], basis.shape[0])
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(10.0))))
    opt = torch.optim.Adam([*head.parameters(), log_scale], lr=cfg.lr)
    for step in range(cfg.steps):
        i = torch.randint(0, len(f0), (cfg.batch,))
        j = torch.randint(0, len(rf), (cfg.batch,))
        l_id = relational_loss(head(f0[i]), head(f1[i]), emb[i], log_scale)
        l_shape = shape_distance_cm(head(rf[j]), ra[j], basis).mean()
        loss = cfg.w_identity * l_id + cfg.w_shape * l_shape
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == cfg.steps - 1:
            print(f"  step {step}: identity {l_id.item():.3f}, shape {l_shape.item() * 10:.2f} mm", flush=True)
    return head


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

def export(model: FaceRegressor, meta: dict, head: torch.nn.Linear, src: Path, out: Path, report: dict) -> Path:
    """``model`` with ``head`` as its identity-shape head, saved at ``out``; the sidecars
    fitted on the unchanged outputs are copied and re-signed for the new weights."""
    new = FaceRegressor(model.arch, ShapeInput.TRUNK_2X2)
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    if set(missing) != {"shape_head.weight", "shape_head.bias"} or (unexpected and set(unexpected) != {
            "heads.shape.weight", "heads.shape.bias"}):
        raise SystemExit(f"unexpected layout: missing {missing}, unexpected {unexpected}")
    new.shape_head.load_state_dict(head.state_dict())
    kept = new.state_dict()
    for k, v in model.state_dict().items():   # the outputs the sidecars read keep their bits
        if k in kept and not torch.equal(kept[k], v):
            raise SystemExit(f"{k} changed: the emotion and presence sidecars would need refitting")
    old_sha = checkpoint.weights_sha256(src)
    meta = {**meta, "identity_shape": {**report, "refitted_from_sha256": old_sha}}
    path = checkpoint.save(new.eval(), meta, out)
    resign_sidecars(src, path)
    return path


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path().with_suffix(""),
                    help="the trained network whose shape head is refitted")
    ap.add_argument("--out", type=Path, help="where to write it (default: in place)")
    ap.add_argument("--synth", default="data/synth/train-*.npz", help="renders for the shape term")
    ap.add_argument("--val", default="data/synth/val-*.npz", help="renders the report is measured on")
    ap.add_argument("--teacher-cache", type=Path, default=TEACHER_CACHE)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=FitConfig.steps)
    a = ap.parse_args(argv)
    cfg = FitConfig(steps=a.steps)
    torch.set_num_threads(max(1, a.jobs))
    model, meta = checkpoint.load(a.checkpoint)
    if model.shape_input is ShapeInput.TRUNK_2X2:
        raise SystemExit(f"{a.checkpoint} already has an identity-shape head; refit from the trained network")
    table = teacher(a.teacher_cache, a.jobs)
    print(f"teacher: {len(table['index'])} AFLW faces with an embedding", flush=True)
    f0, f1 = aflw_features(model, meta, table)
    ho = heldout(table["name"])
    rf, ra = render_features(model, meta, a.synth)
    vf, va = render_features(model, meta, a.val)
    basis = identity_basis(face_model.load())
    emb = torch.from_numpy(table["emb"])
    train = torch.from_numpy(~ho)
    head = fit(f0[train], f1[train], emb[train], rf, ra, basis, cfg)
    held = torch.from_numpy(ho)
    report = {"teacher": "dlib_face_recognition_resnet_model_v1 (face_recognition_models, CC0)",
              "train_faces": int(train.sum()), "renders": int(len(rf)), "fit": asdict(cfg),
              "command": "python -m training.identity_shape " + " ".join(sys.argv[1:] if argv is None else argv),
              "validation": validate(head, f0[held], f1[held], table["emb"][ho], vf, va, basis)}
    print(json.dumps(report["validation"], indent=2))
    path = export(model, meta, head, a.checkpoint, a.out or a.checkpoint, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
