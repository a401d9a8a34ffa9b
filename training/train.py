"""Train the multi-task face regressor (``facestream train``).

Fixed seed, logs (JSON lines), resumable: ``RUN/last.pt`` holds model, optimiser, step and
RNG states and is rewritten atomically every ``--save-every`` steps; a killed run started
again with the same command continues where it stopped. Uses the GPU when there is one.

Batches mix teacher-labelled real faces (pose, expression, some landmarks) with renders of
the face model (everything, exact): ``--synth-frac`` of each batch is renders, the rest is
drawn from the ``--real`` label files in proportion to ``--real-weights`` (one weight per
file, so a large set such as FER2013 does not drown the video frames). Losses: L1 on
the rotation matrix, on the face centre and log scale and on the 68 landmarks (auxiliary;
masked where unknown; the rotation weighted by how far its teacher is trusted); on eta a Huber loss of the error in
units of each component's label s.d., masked where the teacher gave no expression (profiles); on identity alpha (renders
only) the 3D error it makes at the 68 landmark vertices. ``--pretrained 3ddfa_v2`` starts
an ``mb05`` trunk from 3DDFA_V2's face-trained weights.

``--emotion-weight`` adds a cross-entropy through a linear classifier that reads only the
predicted eta, on the faces that carry an emotion label (FER2013's training split): eta is
meant to tell expressions apart, and the blendshape labels alone leave directions that
separate emotions underweighted. The classifier is a training aid, kept in ``last.pt``
and not shipped (workers/emotion.py fits the shipped one on the finished network's eta).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training.data import AugmentConfig, augment, concat, real_to_samples, sample_batch, with_defaults
from training.metrics import identity_basis, pose_metrics, predict_samples
from workers import checkpoint, face_model
from workers.crops import CropRule
from workers.emotion_labels import EMOTION_CLASSES
from workers.mirror import MIRROR68, blend_mirror
from workers.networks import INPUT_SIZE, FaceRegressor, ShapeInput, init_from_3ddfa
from workers.pose import matrix_from_6d
from workers.regressor import SCALE_REF

WEIGHTS = {"eta": 2.0, "rot": 4.0, "centre": 2.0, "scale": 1.0, "shape": 1.0, "lm": 2.0}
# eta uses a Huber loss: under plain L1 its head sat at the label median (prediction
# spread 5% of the labels') while pose and landmarks learned; the quadratic zone gives
# gradients in proportion to the error. eta is measured in units of each component's label
# s.d. (floored), quadratic out to 3 s.d.: with raw units and a quadratic zone of 1, most
# render errors fell in the linear zone and the low-variance components (eyes, brows)
# weighed little.
# Identity alpha is judged by the shape it makes, mean 3D distance (cm) at the 68 landmark
# vertices: most of the 99 modes move the face by under a pixel and a loss on the
# coefficients spread its weight evenly over them, so the visible few never stood out.
# Distances also mirror, so mirrored samples keep their shape label.
ETA_SD_FLOOR = 0.3
ETA_QUADRATIC_SD = 3.0


def eta_scale(blend_sets: list[np.ndarray], blend_to_eta: np.ndarray) -> np.ndarray:
    """Per-component s.d. of the eta labels over the training data, floored."""
    eta = np.concatenate(blend_sets) @ blend_to_eta.T
    return np.maximum(eta.std(0), ETA_SD_FLOOR).astype(np.float32)


def load_synth(patterns: list[str]) -> tuple[dict | None, int]:
    from training.data import FIELDS
    files = sorted({f for p in patterns for f in glob.glob(p)})
    parts = []
    for f in files:
        try:
            d = np.load(f)
            parts.append(with_defaults({k: d[k] for k in FIELDS if k in d.files}))
        except Exception:  # a shard still being written
            continue
    return (concat(parts) if parts else None), len(parts)


def shape_error_cm(alpha: torch.Tensor, alpha_true: torch.Tensor, flip: torch.Tensor,
                   basis: torch.Tensor) -> torch.Tensor:
    """Per-sample mean 3D landmark distance between two identities; where the input was
    mirrored the true face is mirrored too (x negated, left/right landmarks swapped)."""
    pred = torch.einsum("na,akc->nkc", alpha, basis)
    true = torch.einsum("na,akc->nkc", alpha_true, basis)
    mirrored = true[:, torch.from_numpy(MIRROR68)] * torch.tensor([-1.0, 1.0, 1.0], device=true.device)
    true = torch.where(flip[:, None, None], mirrored, true)
    return (pred - true).norm(dim=-1).mean(1)


def losses(out: dict, lab: dict, size: int, eta_sd: torch.Tensor, id_basis: torch.Tensor) -> dict:
    R = matrix_from_6d(out["rot6d"])
    scale_t = lab["log_scale"] - math.log(SCALE_REF * size / 128.0)
    z = (out["expression"] - lab["eta"]) / eta_sd
    em = lab["blend_mask"].float()
    # 2·Huber: z² in the quadratic zone; faces without an expression label do not count
    eta = 2 * torch.nn.functional.huber_loss(z, torch.zeros_like(z), delta=ETA_QUADRATIC_SD, reduction="none")
    terms = {
        "eta": (eta.mean(1) * em).sum() / em.sum().clamp(min=1),
        "rot": (((R - lab["R"]).abs().mean((1, 2)) * lab["pose_weight"]).sum()
                / lab["pose_weight"].sum().clamp(min=1e-6)),
        "centre": (out["trans"][:, :2] - lab["centre"]).abs().mean(),
        "scale": (out["trans"][:, 2] - scale_t).abs().mean(),
    }
    sm = lab["shape_mask"].float()
    shape = shape_error_cm(out["shape"], lab["shape"], lab["flip"], id_basis)
    terms["shape"] = (shape * sm).sum() / sm.sum().clamp(min=1)
    lm = out["landmarks"].view(-1, 68, 2)
    m = lab["lm_mask"].float()
    terms["lm"] = ((lm - lab["lm"]).abs().sum(-1) * m).sum() / m.sum().clamp(min=1)
    terms["total"] = sum(WEIGHTS[k] * terms[k] for k in WEIGHTS)
    return terms


def emotion_loss(eta: torch.Tensor, emotion: torch.Tensor, eta_sd: torch.Tensor, head: torch.nn.Linear) -> torch.Tensor:
    """Cross-entropy of a linear read of eta (in units of each component's s.d.) against
    the emotion label, over the faces that have one (0 when none has)."""
    has = emotion >= 0
    if not has.any():
        return eta.sum() * 0
    return torch.nn.functional.cross_entropy(head(eta[has] / eta_sd), emotion[has])


def real_indices(sizes: np.ndarray, weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices into the label files concatenated (``sizes`` faces each): a file drawn by
    weight per sample, then a face in it."""
    sizes = np.asarray(sizes)
    which = rng.choice(len(sizes), size=n, p=weights)
    return np.concatenate([[0], np.cumsum(sizes)[:-1]])[which] + (rng.random(n) * sizes[which]).astype(np.int64)


def evaluate_real(model: torch.nn.Module, data: dict, size: int, device: torch.device | str) -> dict:
    """Pose MAE and eta RMSE against the held-out teacher labels (no augmentation)."""

    model.eval()
    P, L = predict_samples(model, data, size, device)
    model.train()
    return {**pose_metrics(P, L), "eta_rmse": float(np.sqrt(((P["expression"] - L["eta"]) ** 2).mean()))}


def new_model(args: argparse.Namespace) -> FaceRegressor:
    """The network to train: from ``--init``'s weights, the 3DDFA-V2 trunk, or fresh."""
    model = FaceRegressor(args.arch)
    if args.init is not None:
        init, _ = checkpoint.load(args.init)
        if init.arch != args.arch:
            raise SystemExit(f"--init {args.init} is a {init.arch}, not --arch {args.arch}")
        # every head trains end to end from the embedding; an identity branch trained
        # afterwards (training/identity_branch.py) is trained again after this training too
        model.load_state_dict(init.state_dict(), strict=init.shape_input is ShapeInput.EMBEDDING)
    elif args.pretrained == "3ddfa_v2":
        init_from_3ddfa(model)
    return model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/mb05"))
    ap.add_argument("--real", type=Path, nargs="*", default=[Path("data/labels/real_train.npz")])
    ap.add_argument("--real-weights", type=float, nargs="*", default=None,
                    help="share of the real part of a batch for each --real file (default: equal)")
    ap.add_argument("--real-val", type=Path, default=Path("data/labels/real_test.npz"))
    ap.add_argument("--synth-frac", type=float, default=0.5, help="share of each batch that is renders")
    ap.add_argument("--pretrained", choices=["none", "3ddfa_v2"], default="none",
                    help="start the trunk from face-trained weights (mb05 only); ignored with --init or when resuming")
    ap.add_argument("--synth", nargs="+", default=["data/synth/train-*.npz"],
                    help="render shard globs (shards written while training are picked up)")
    ap.add_argument("--arch", default="mb05")
    ap.add_argument("--size", type=int, default=None, help="input side (default: the architecture's)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--export", type=Path, default=None, help="write the final checkpoint here too")
    ap.add_argument("--emotion-weight", type=float, default=0.0,
                    help="weight of the cross-entropy of a linear read of eta on emotion-labelled faces")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this checkpoint's weights (a fine-tune stage); ignored when resuming")
    args = ap.parse_args(argv)
    # the flags as given, for the checkpoint's record (argv: via `facestream train`)
    args.flags = list(sys.argv[1:] if argv is None else argv)

    args.size = args.size or INPUT_SIZE.get(args.arch, 128)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest kernels once
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    fm = face_model.load()
    perm = blend_mirror(fm.blend_names)
    b2e = torch.from_numpy(fm.blend_to_eta)
    reals = [real_to_samples(p) for p in args.real]
    weights = np.asarray(args.real_weights or [1.0] * len(reals), np.float64)
    if len(weights) != len(reals):
        raise SystemExit(f"--real-weights gives {len(weights)} weights for {len(reals)} --real files")
    weights = weights / weights.sum()
    sizes = np.array([len(r["crop"]) for r in reals])
    real = concat(reals)
    del reals  # the files' arrays live on only in the concatenation (GBs for AFLW and FER)
    real_val = real_to_samples(args.real_val) if args.real_val and args.real_val.exists() else None
    synth, n_shards = load_synth(args.synth)

    model = new_model(args).to(device)
    emotion_head = torch.nn.Linear(29, len(EMOTION_CLASSES)).to(device)
    opt = torch.optim.AdamW([*model.parameters(), *emotion_head.parameters()], lr=args.lr, weight_decay=1e-4)
    warm = max(1, min(300, args.steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    args.run.mkdir(parents=True, exist_ok=True)
    state_path = args.run / "last.pt"
    step = 0
    eta_sd = eta_scale([real["blend"]] + ([synth["blend"]] if synth is not None else []), fm.blend_to_eta)
    if state_path.exists():
        st = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"]); sched.load_state_dict(st["sched"])
        emotion_head.load_state_dict(st["emotion_head"])
        step = st["step"]; rng.bit_generator.state = st["rng"]; torch.set_rng_state(st["torch_rng"])
        eta_sd = st.get("eta_sd", eta_sd)
    eta_sd_t = torch.from_numpy(eta_sd).to(device)
    id_basis = identity_basis(fm).to(device)
    log = open(args.run / "train.jsonl", "a")
    aug = AugmentConfig()
    model.train()
    t0, seen = time.time(), 0
    while step < args.steps:
        if step % 200 == 0:  # pick up render shards written since
            synth, n_shards = load_synth(args.synth)
        n_real = args.batch - int(round(args.batch * args.synth_frac)) if synth is not None else args.batch
        parts = [sample_batch(real, real_indices(sizes, weights, n_real, rng))]
        if synth is not None:
            parts.append(sample_batch(synth, rng.integers(0, len(synth["crop"]), args.batch - n_real)))
        x, lab = augment(concat(parts), args.size, rng, aug, perm, b2e, device=device)
        lab = {k: v.to(device) for k, v in lab.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(x)
        terms = losses({k: v.float() for k, v in out.items()}, lab, args.size, eta_sd_t, id_basis)
        if args.emotion_weight > 0:
            terms["emotion"] = emotion_loss(out["expression"].float(), lab["emotion"], eta_sd_t, emotion_head)
            terms["total"] = terms["total"] + args.emotion_weight * terms["emotion"]
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step(); sched.step()
        step += 1; seen += len(x)
        if step % 25 == 0:
            rec = {"step": step, "lr": sched.get_last_lr()[0], "img_s": seen / (time.time() - t0),
                   "synth_shards": n_shards, **{k: round(float(v.detach()), 4) for k, v in terms.items()}}
            log.write(json.dumps(rec) + "\n"); log.flush()
        if step % args.save_every == 0 or step == args.steps:
            ev = evaluate_real(model, real_val, args.size, device) if real_val else {}
            log.write(json.dumps({"step": step, "eval_real_heldout": ev}) + "\n"); log.flush()
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "eta_sd": eta_sd, "emotion_head": emotion_head.state_dict()}, tmp)
            os.replace(tmp, state_path)
            export(model.cpu(), args, fm, step, ev, args.run / "checkpoint" / checkpoint.DEFAULT_NAME)
            model.to(device)
    if args.export:  # also after the run has finished: the same command with --export
        export(model.cpu(), args, fm, step, last_eval(args.run), args.export)


def last_eval(run: Path) -> dict:
    """The latest held-out evaluation the run logged."""
    ev: dict = {}
    for line in (run / "train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        ev = rec.get("eval_real_heldout", ev)
    return ev


def export(model: FaceRegressor, args: argparse.Namespace, fm: face_model.FaceModel, step: int, ev: dict,
           path: Path | str) -> None:
    meta = {
        "name": Path(path).stem, "trained": True, "steps": step,
        **CropRule(size=args.size).to_meta(),
        # trained with mirror augmentation: run on the crop and its mirror image, averaged
        "inference": {"mirror_average": True},
        "face_model": fm.meta(),
        "training": {"command": "facestream train " + " ".join(shlex.quote(a) for a in args.flags),
                     "seed": args.seed, "real": [str(p) for p in args.real], "synth": args.synth,
                     "real_weights": args.real_weights, "synth_frac": args.synth_frac,
                     "pretrained": args.pretrained, "emotion_weight": args.emotion_weight,
                     "init": str(args.init) if args.init else None},
        "evaluation": {"real_heldout_teacher_agreement": ev},
    }
    checkpoint.save(model, meta, path)


if __name__ == "__main__":
    main()
