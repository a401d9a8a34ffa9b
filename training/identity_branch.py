"""Identity branch: a few trunk blocks of alpha's own, trained for who a face is.

A linear read-out of the frozen trunk (2026-12-07, docs/accuracy.md) made alpha separate the
held-out clips' people (AUC 0.91) but not one person's photos taken years apart (0.84):
the trunk is trained for pose and expression, and its features keep the session (light,
camera, hair) beside the face's build. Fine-tuning the trunk itself for identity would move
every other output. So alpha gets a branch (``ShapeInput.BRANCH``): a copy of ``depth``
trunk blocks after ``split`` (the 8×8 maps the emotion branch reads too), pooled to 2×2
cells, then the 99-D shape head. The branch starts from the trunk's weights and is trained
with the trunk frozen, on three terms:

* **who is who** (AFLW faces, its held-out tenth left out): relational distillation from
  dlib's embedding (training/identity_teacher.py) between two views of each face: one
  as cut, one with its box moved and scaled and its colour, contrast, focus changed, then
  mirrored, so that what alpha keeps is what survives a different photo of the same face;
* **the teacher's embedding itself**, through a linear projection of the branch's features
  that is thrown away after training: a direct signal for the branch's convolutions;
* **the shape it makes**: the 3-D landmark distance to the exact alpha of renders, so alpha
  stays a face shape (reported on the ``val`` renders beside the mean face's).

The branch's batch norms keep the trunk's statistics (frozen, as in the emotion branch).
Everything else in the network keeps its bits (checked at export), so the emotion
classifier, the presence probe and the emotion branch are re-signed, not refitted.

    python -m training.identity_branch --checkpoint workers/weights/facestream-mb05 \\
        --synth 'data/synth/train-000[0-3].npz' --val 'data/synth/val-0000.npz'

The teacher table is training/identity_teacher.py's (25 minutes on 2 cores the first time);
the feature maps take a few minutes, the fit about half an hour on 2 cores.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.emotion_branch import frozen_bn
from training.identity_teacher import (
    TEACHER_CACHE,
    canvas,
    relational_loss,
    render_inputs,
    resign_sidecars,
    shape_distance_cm,
    teacher,
    validate,
)
from training.metrics import identity_basis
from training.wild_data import AFLW
from training.wild_labels import heldout
from workers import checkpoint, face_model
from workers.networks import HEADS, FaceRegressor, ShapeBranch, ShapeInput, out_channels

TEACHER_DIM = 128
TUNABLE = ("split", "depth", "views", "steps", "batch", "lr", "w_embedding", "w_shape", "seed")  # --flags


@dataclass(frozen=True)
class BranchConfig:
    split: int = 6
    depth: int = 2
    views: int = 3            # per face: as cut, then augmented ones
    steps: int = 1000
    batch: int = 192
    render_batch: int = 64
    lr: float = 1e-3
    w_identity: float = 1.0
    w_embedding: float = 1.0
    w_shape: float = 1.0
    seed: int = 0


# ----------------------------------------------------------------------------- views

def augmented_view(image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image, box) as another photo of the face might show it: the box moved by up to 6%
    and scaled by ±10%, brightness, contrast and saturation changed, sometimes grey or
    out of focus."""
    import cv2

    side = float(max(box[2] - box[0], box[3] - box[1]))
    c = (box[:2] + box[2:]) / 2 + rng.uniform(-0.06, 0.06, 2) * side
    half = (box[2:] - box[:2]) / 2 * rng.uniform(0.9, 1.1)
    out = image.astype(np.float32)
    grey = out.mean(2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(0.6, 1.4)                    # saturation
    out = (out - out.mean()) * rng.uniform(0.7, 1.3) + out.mean()       # contrast
    out = out * rng.uniform(0.7, 1.3)                                   # brightness
    if rng.random() < 0.15:
        out = np.repeat(out.mean(2, keepdims=True), 3, 2)
    view = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        view = cv2.GaussianBlur(view, (0, 0), float(rng.uniform(0.6, 1.5)))
    return view, np.concatenate([c - half, c + half])


@torch.no_grad()
def aflw_maps(model: FaceRegressor, meta: dict, table: dict, split: int, views: int,
              seed: int = 0) -> torch.Tensor:
    """(faces, views, 2, C, H, W) float16: the shared maps of each AFLW face's views
    (view 0 as cut) and of their mirror images."""
    from workers.crops import CropRule, crop_faces, to_tensor

    rule = CropRule.from_meta(meta)
    rows = AFLW.read()
    rng = np.random.default_rng(seed)
    out: list[torch.Tensor] = []
    n = len(table["index"])
    for k in range(0, n, 128):
        crops = []
        for i, box in zip(table["index"][k:k + 128], table["box"][k:k + 128]):
            image = canvas(rows["image"][i])
            for v in range(views):
                im, b = (image, box) if v == 0 else augmented_view(image, box, rng)
                crops.append(crop_faces(im, b[None], rule)[0][0])
        x = to_tensor(np.stack(crops), rule)
        m = torch.stack([model.shared(x, split), model.shared(x.flip(3), split)], 1)
        out.append(m.reshape(-1, views, 2, *m.shape[2:]).half())
        if k % 2560 == 0:
            print(f"  maps: {k + len(crops) // views} / {n} faces", flush=True)
    return torch.cat(out)


@torch.no_grad()
def render_maps(model: FaceRegressor, meta: dict, pattern: str, split: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The shared maps of renders (un-augmented inputs), float16, and their exact alpha."""
    maps, alpha = [], []
    for x, a in render_inputs(meta, pattern):
        maps.append(model.shared(x, split).half())
        alpha.append(a)
    return torch.cat(maps), torch.cat(alpha)


# ----------------------------------------------------------------------------- the model trained

class IdentityBranch(nn.Module):
    """The trainable part: the copied blocks (batch norms frozen), the 2×2 pooling, the
    shape head, and the teacher projection used only in training."""

    def __init__(self, model: FaceRegressor, cfg: BranchConfig) -> None:
        super().__init__()
        self.blocks = copy.deepcopy(model.trunk[cfg.split:cfg.split + cfg.depth])
        width = out_channels(self.blocks)
        self.head = nn.Linear(4 * width, HEADS["shape"])
        self.project = nn.Linear(4 * width, TEACHER_DIM)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))

    def cells(self, maps: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(maps.float()), 2), 1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Alpha (N, 99) from shared maps."""
        return self.head(self.cells(maps))


def centred(emb: torch.Tensor) -> torch.Tensor:
    """dlib's unit embeddings less their mean, renormalised: any two faces' raw embeddings
    are 0.86 alike by cosine, so matching them raw is learnt by predicting the mean."""
    return nn.functional.normalize(emb - emb.mean(0), dim=1)


def fit(maps: torch.Tensor, emb: torch.Tensor, rmaps: torch.Tensor, ralpha: torch.Tensor, basis: torch.Tensor,
        branch: IdentityBranch, cfg: BranchConfig, log_every: int = 100) -> IdentityBranch:
    """Train ``branch`` on AFLW maps (``maps``, teacher ``emb``) and renders."""
    target = centred(emb)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW([p for p in branch.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=1e-4)
    warm = max(1, cfg.steps // 10)   # a tenth of the steps warming up, then a cosine down to 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * s / cfg.steps)))
    frozen_bn(branch)   # the trunk's statistics stay
    for step in range(cfg.steps):
        i = torch.randint(0, len(maps), (cfg.batch,))
        va = torch.randint(0, cfg.views, (cfg.batch,))
        vb = (va + torch.randint(1, cfg.views, (cfg.batch,))) % cfg.views if cfg.views > 1 else va
        c0, c1 = branch.cells(maps[i, va, 0]), branch.cells(maps[i, vb, 1])
        l_id = relational_loss(branch.head(c0), branch.head(c1), emb[i], branch.log_scale)
        e = nn.functional.normalize(branch.project(torch.cat([c0, c1])), dim=1)
        l_emb = 1 - (e * target[i].repeat(2, 1)).sum(1).mean()
        j = torch.randint(0, len(rmaps), (cfg.render_batch,))
        l_shape = shape_distance_cm(branch(rmaps[j]), ralpha[j], basis).mean()
        loss = cfg.w_identity * l_id + cfg.w_embedding * l_emb + cfg.w_shape * l_shape
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            print(f"  step {step}: identity {l_id.item():.3f}, embedding {l_emb.item():.3f}, "
                  f"shape {l_shape.item() * 10:.2f} mm", flush=True)
    return branch.eval()


# ----------------------------------------------------------------------------- export

def export(model: FaceRegressor, meta: dict, branch: IdentityBranch, cfg: BranchConfig, src: Path, out: Path,
           report: dict) -> Path:
    """``model`` with ``branch`` as its identity branch and shape head, saved at ``out``;
    the sidecars fitted on the unchanged outputs are copied and re-signed."""
    spec = ShapeBranch(cfg.split, cfg.depth)
    new = FaceRegressor(model.arch, ShapeInput.BRANCH, spec)
    old = {k: v for k, v in model.state_dict().items() if not k.startswith(("shape_head.", "heads.shape."))}
    missing, unexpected = new.load_state_dict(old, strict=False)
    if unexpected or any(not k.startswith(("shape_branch.", "shape_head.")) for k in missing):
        raise SystemExit(f"unexpected layout: missing {missing}, unexpected {unexpected}")
    new.shape_branch.load_state_dict(branch.blocks.state_dict())
    new.shape_head.load_state_dict(branch.head.state_dict())
    kept = new.state_dict()
    for k, v in old.items():   # the outputs the sidecars read keep their bits
        if not torch.equal(kept[k], v):
            raise SystemExit(f"{k} changed: the emotion and presence sidecars would need refitting")
    old_sha = checkpoint.weights_sha256(src)
    meta = {k: v for k, v in meta.items() if k != "identity_shape"}
    meta = {**meta, "identity_branch": {**report, "trained_beside_sha256": old_sha}}
    path = checkpoint.save(new.eval(), meta, out)
    resign_sidecars(src, path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path().with_suffix(""),
                    help="the trained network that gets an identity branch")
    ap.add_argument("--out", type=Path, help="where to write it (default: in place)")
    ap.add_argument("--synth", default="data/synth/train-000[0-3].npz", help="renders for the shape term")
    ap.add_argument("--val", default="data/synth/val-0000.npz", help="renders the report is measured on")
    ap.add_argument("--teacher-cache", type=Path, default=TEACHER_CACHE)
    ap.add_argument("--maps-cache", type=Path, default=Path("data/cache/identity_branch_maps.pt"),
                    help="the AFLW and render maps, kept for another fit on the same network and split")
    ap.add_argument("--jobs", type=int, default=2)
    for f in TUNABLE:
        default = getattr(BranchConfig, f)
        ap.add_argument("--" + f.replace("_", "-"), type=type(default), default=default)
    a = ap.parse_args(argv)
    cfg = BranchConfig(**{f: getattr(a, f) for f in TUNABLE})
    torch.set_num_threads(max(1, a.jobs))
    model, meta = checkpoint.load(a.checkpoint)
    table = teacher(a.teacher_cache, a.jobs)
    print(f"teacher: {len(table['index'])} AFLW faces with an embedding", flush=True)
    key = {"weights_sha256": checkpoint.weights_sha256(a.checkpoint), "split": cfg.split, "views": cfg.views,
           "faces": len(table["index"]), "synth": a.synth, "val": a.val}
    cached = torch.load(a.maps_cache) if a.maps_cache.exists() else None
    if cached is not None and cached["key"] == key:
        maps, rm, ra, vm, va = (cached[k] for k in ("maps", "rm", "ra", "vm", "va"))
    else:
        maps = aflw_maps(model, meta, table, cfg.split, cfg.views)
        rm, ra = render_maps(model, meta, a.synth, cfg.split)
        vm, va = render_maps(model, meta, a.val, cfg.split)
        a.maps_cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "maps": maps, "rm": rm, "ra": ra, "vm": vm, "va": va}, a.maps_cache)
    ho = torch.from_numpy(heldout(table["name"]))
    basis = identity_basis(face_model.load())
    emb = torch.from_numpy(table["emb"])
    branch = IdentityBranch(model, cfg)
    fit(maps[~ho], emb[~ho], rm, ra, basis, branch, cfg)
    with torch.no_grad():
        valid = validate(branch, maps[ho, 0, 0], maps[ho, 0, 1], table["emb"][ho.numpy()], vm, va, basis)
    report = {"teacher": "dlib_face_recognition_resnet_model_v1 (face_recognition_models, CC0)",
              "train_faces": int((~ho).sum()), "renders": int(len(rm)), "fit": asdict(cfg),
              "command": "python -m training.identity_branch " + " ".join(sys.argv[1:] if argv is None else argv),
              "validation": valid}
    print(json.dumps(report["validation"], indent=2), flush=True)
    path = export(model, meta, branch, cfg, a.checkpoint, a.out or a.checkpoint, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
