"""Fine-tune an emotion branch (workers/emotion_branch.py) on FER2013's training faces.

The shipped network stays frozen; the branch (a copy of its trunk after block ``--split``
and a 7-way classifier) is trained end to end on FER2013's training split with the emotion
labels people gave, never on its test splits. The faces are split by image-name hash
exactly as the rest of the recipe splits them: ``training.wild_labels.heldout`` (the
held-out faces every emotion number in docs/accuracy.md is measured on; never trained,
chosen or calibrated on) and ``training.emotion_fit.calibration_split`` (the calibration
part: the epoch to keep and the temperature are chosen there). The branch learns from the
rest.

Faces are cut as the service cuts them: FER2013 faces fill their 48-px frame
(``wild_teach.prior_box``), and the checkpoint's crop rule makes the 120-px crop, here by
``grid_sample`` so that augmentation (mirror, scale, shift, in-plane rotation, contrast
and brightness) composes into the same warp. Batch norms keep the trunk's statistics
(workers/emotion_branch.py says why).

A run is resumable: ``RUN/last.pt`` after every epoch; start the same command again.

    .venv/bin/python -m training.emotion_branch --run runs/emotion-branch \\
        --checkpoint workers/weights/facestream-mb05 --split 6 --epochs 12 --lr 1e-3 [--export]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from training.emotion_fit import calibration_split, fit_temperature
from training.wild_data import FER
from training.wild_labels import heldout
from training.wild_teach import prior_box
from workers import checkpoint
from workers.crops import CropRule, crop_affines
from workers.emotion_branch import EmotionBranch, save
from workers.emotion_labels import EMOTION_CLASSES
from workers.networks import FaceRegressor

SEED = 0


def warp_grid(n: int, rule: CropRule, frame: int, augment: bool, gen: torch.Generator) -> torch.Tensor:
    """(n, S, S, 2) sampling grids for ``grid_sample``: the crop rule's warp of a face that
    fills its ``frame`` (prior_box), composed with a random mirror, scale (±10%), shift
    (±6% of the crop) and rotation (±15°) about the crop's centre when ``augment``."""
    A = torch.from_numpy(crop_affines(prior_box(FER)[None], rule)[0]).float()   # crop -> frame coordinates
    S = rule.size
    c = (torch.arange(S, dtype=torch.float32) + 0.5) - S / 2                      # pixel centres about the centre
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    pts = torch.stack([xx, yy], -1).reshape(1, -1, 2).expand(n, -1, -1)           # (n, S*S, 2)
    if augment:
        u = torch.rand(n, 5, generator=gen)
        flip = torch.where(u[:, 0] < 0.5, -1.0, 1.0)
        scale = 1.0 + 0.2 * (u[:, 1] - 0.5)
        ang = math.radians(30.0) * (u[:, 2] - 0.5)
        shift = 0.12 * S * (u[:, 3:5] - 0.5)
        cos, sin = torch.cos(ang) * scale, torch.sin(ang) * scale
        x = pts[..., 0] * flip[:, None]
        y = pts[..., 1]
        pts = torch.stack([cos[:, None] * x - sin[:, None] * y, sin[:, None] * x + cos[:, None] * y], -1) \
            + shift[:, None, :]
    pts = pts + S / 2
    img = pts @ A[:, :2].T + A[:, 2]                                                  # frame coordinates
    return (img / frame * 2 - 1).reshape(n, S, S, 2)


def crops(images: torch.Tensor, rule: CropRule, augment: bool, gen: torch.Generator) -> torch.Tensor:
    """Normalised network inputs (N, 3, S, S) from uint8 frames (N, F, F, 3)."""
    x = images.permute(0, 3, 1, 2).float()
    grid = warp_grid(len(x), rule, x.shape[-1], augment, gen)
    out = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False) / 255
    if augment:   # contrast and brightness, as light and cameras vary
        u = torch.rand(len(x), 2, 1, 1, 1, generator=gen)
        out = ((out - 0.5) * (0.6 + 0.8 * u[:, 0]) + 0.5 + 0.2 * (u[:, 1] - 0.5)).clamp(0, 1)
    mean = torch.tensor(rule.mean).view(1, 3, 1, 1)
    std = torch.tensor(rule.std).view(1, 3, 1, 1)
    return (out - mean) / std


class Shared(nn.Module):
    """The frozen network up to the branch's split: what the branch reads."""

    def __init__(self, model: FaceRegressor, split: int) -> None:
        super().__init__()
        self.stem, self.blocks = model.stem, model.trunk[:split]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


@torch.no_grad()
def logits_of(shared: Shared, branch: EmotionBranch, images: torch.Tensor, rule: CropRule,
              mirror: bool, batch: int = 256) -> torch.Tensor:
    """Un-augmented logits of every face, averaged with its mirror image's when ``mirror``."""
    branch.eval()
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(0, len(images), batch):
        x = crops(images[i:i + batch], rule, False, gen)
        z = branch(shared(x))
        if mirror:
            z = (z + branch(shared(x.flip(-1)))) / 2
        out.append(z)
    return torch.cat(out)


@dataclass
class Faces:
    """FER2013's training split, its images and labels, and the three parts of it."""

    images: torch.Tensor     # (N, 48, 48, 3) uint8
    y: torch.Tensor          # (N,) class indices of EMOTION_CLASSES
    train: np.ndarray        # bool masks: learnt from,
    calib: np.ndarray        # ... the epoch and the temperature chosen on,
    held: np.ndarray         # ... and never used but to report

    @classmethod
    def read(cls) -> "Faces":
        data = FER.read()
        held = heldout(data["name"])
        calib = calibration_split(data["name"]) & ~held
        return cls(torch.from_numpy(data["image"]), torch.tensor([EMOTION_CLASSES.index(c) for c in data["emotion"]]),
                   ~held & ~calib, calib, held)


M = TypeVar("M", bound=nn.Module)


def frozen_bn(branch: M) -> M:
    """A branch in training mode with its batch norms' statistics kept (module docstring):
    the trunk's, which the service's crops match. The identity branch trains so too."""
    branch.train()
    for m in branch.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return branch


def train_epoch(shared: Shared, branch: EmotionBranch, faces: Faces, rule: CropRule, opt, sched,
                args: argparse.Namespace, epoch: int) -> dict:
    """One pass over the learning part in a seeded order; the mean loss and accuracy."""
    gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
    idx_all = np.flatnonzero(faces.train)
    order = idx_all[torch.randperm(len(idx_all), generator=gen).numpy()]
    frozen_bn(branch)
    t0, seen, right, loss_sum = time.time(), 0, 0, 0.0
    steps = len(order) // args.batch
    for s in range(steps):
        idx = torch.from_numpy(order[s * args.batch:(s + 1) * args.batch])
        x = crops(faces.images[idx], rule, True, gen)
        with torch.no_grad():
            h = shared(x)
        z = branch(h)
        loss = nn.functional.cross_entropy(z, faces.y[idx], label_smoothing=args.smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        seen += len(idx)
        right += int((z.argmax(1) == faces.y[idx]).sum())
        loss_sum += float(loss.detach()) * len(idx)
        if s % 50 == 0:
            print(f"epoch {epoch + 1} step {s}/{steps} loss {loss_sum / seen:.3f} "
                  f"acc {right / seen:.3f} {time.time() - t0:.0f}s", flush=True)
    return {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": right / seen, "seconds": time.time() - t0}


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


def evaluate(shared: Shared, branch: EmotionBranch, faces: Faces, rule: CropRule) -> dict:
    """The temperature (calibration part, mirror-averaged as files are read) and top-1 on
    the held-out faces in both readings, with its standard error."""
    cal, held = (torch.from_numpy(np.flatnonzero(m)) for m in (faces.calib, faces.held))
    logits = logits_of(shared, branch, faces.images[cal], rule, True)
    report: dict = {"temperature": fit_temperature(logits.numpy(), faces.y[cal].numpy())}
    for view, mirror in (("mirror_averaged", True), ("one_view", False)):
        acc = accuracy(logits_of(shared, branch, faces.images[held], rule, mirror), faces.y[held])
        report[view] = {"heldout_acc": acc, "heldout_se": math.sqrt(acc * (1 - acc) / len(held)), "faces": len(held)}
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="run directory (last.pt, log.jsonl)")
    ap.add_argument("--checkpoint", default=str(checkpoint.default_path()), help="the frozen network")
    ap.add_argument("--split", type=int, default=6, help="trunk blocks shared with the network (1-12)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export", action="store_true", help="write the kept epoch's branch beside the checkpoint")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)

    model, meta = checkpoint.load(args.checkpoint)
    rule = CropRule.from_meta(meta)
    for p in model.parameters():
        p.requires_grad_(False)
    shared = Shared(model, args.split).eval()
    branch = EmotionBranch(model.trunk, args.split)
    for p in branch.parameters():       # the copies come frozen with the trunk they were copied from
        p.requires_grad_(True)
    faces = Faces.read()
    print(f"FER2013 train split: {faces.train.sum()} to learn from, {faces.calib.sum()} to calibrate, "
          f"{faces.held.sum()} held out")

    opt = torch.optim.AdamW(branch.parameters(), lr=args.lr, weight_decay=1e-4)
    total = int(faces.train.sum()) // args.batch * args.epochs

    def warm_cosine(step: int) -> float:
        return min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warm_cosine)
    state_path, log_path = args.run / "last.pt", args.run / "log.jsonl"
    start, best = 0, {"calib_acc": -1.0}
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        branch.load_state_dict(st["branch"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        start, best = st["epoch"], st["best"]
        print(f"resumed after epoch {start}")
    cal = torch.from_numpy(np.flatnonzero(faces.calib))
    for epoch in range(start, args.epochs):
        rec = train_epoch(shared, branch, faces, rule, opt, sched, args, epoch)
        rec["calib_acc"] = accuracy(logits_of(shared, branch, faces.images[cal], rule, mirror=False), faces.y[cal])
        print(json.dumps(rec), flush=True)
        with log_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        if rec["calib_acc"] > best["calib_acc"]:
            best = {"calib_acc": rec["calib_acc"], "epoch": epoch + 1}
            torch.save(branch.state_dict(), args.run / "best.pt")
        tmp = args.run / "last.tmp"
        torch.save({"branch": branch.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "best": best}, tmp)
        tmp.replace(state_path)

    branch.load_state_dict(torch.load(args.run / "best.pt"))
    report = {"best": best, "split": args.split, **evaluate(shared, branch, faces, rule)}
    print(json.dumps(report))
    (args.run / "report.json").write_text(json.dumps(report, indent=1))
    if args.export:
        command = "python -m training.emotion_branch " + " ".join(argv if argv is not None else sys.argv[1:])
        training = {"command": command, "data": "FER2013 training split (../shared/data/fer2013/train.parquet), "
                    "less training.wild_labels.heldout and training.emotion_fit.calibration_split",
                    "faces": int(faces.train.sum()), "calibration_faces": int(faces.calib.sum()),
                    "epochs": args.epochs, "kept_epoch": best["epoch"], "lr": args.lr, "batch": args.batch,
                    "label_smoothing": args.smoothing, "seed": args.seed}
        path = save(branch, args.checkpoint, report["temperature"],
                    {"training": training, "evaluation": report, "network": {"name": meta.get("name")}})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
