"""Fit the presence probe (workers/presence.py) on a trained network and measure it on
faces and scenes it was not fitted on.

Positives are crops placed as the detector's box would place them, jittered as a tracked
crop drifts between detections (shift up to 8% of the face, scale up to 12%), plus AFLW's
in-the-wild faces (profiles included: a turned face is still a face). Negatives are what a
lost track's crop shows: the face shifted half a face or more out of the crop, zoomed
three times in or out, and background with no face in it. Frames come from the clips and
photos the network trained on; the held-out numbers come from other clips and from the
AFLW and FER2013 held-out faces (split by image, never trained on).

    python -m training.presence --checkpoint workers/weights/facestream-mb05 \
        --out docs/presence.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
import torch

from streamer.config import DetectorConfig
from training.data import CTX_FACTOR
from workers import checkpoint
from workers.boxes import iou_matrix
from workers.crops import CropRule, crop_faces, to_tensor
from workers.detector import FaceDetector
from workers.presence import Probe, path_for

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FIT_CLIPS = ["lp_d0", "lp_d3", "lp_d6", "lp_d9", "lp_d10", "lp_s18"]      # the network's training clips
FIT_PHOTOS = ["group_test1", "two_people", "obama_and_biden", "emma_input", "prnet_1", "prnet_2"]
HELD_CLIPS = ["lp_d11", "lp_s32", "vr_4", "vr_5", "st_wda_aoc", "tpsmm_driving"]
HELD_PHOTOS = ["biden2", "prnet_3", "prnet_4", "prnet_5"]
KINDS = ("face", "shifted", "zoomed", "background")


def _frames(path: Path, every: int) -> Iterator[np.ndarray]:
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % every == 0:
                yield f.to_ndarray(format="rgb24")


def _images(clips: list[str], photos: list[str], every: int) -> Iterator[np.ndarray]:
    import cv2

    for name in clips:
        yield from _frames(REAL / "video" / f"{name}.mp4", every)
    for name in photos:
        image = cv2.imread(str(REAL / f"{name}.jpg"))
        if image is None:
            raise FileNotFoundError(REAL / f"{name}.jpg")
        yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _moved(box: np.ndarray, shift: np.ndarray, scale: float) -> np.ndarray:
    c, side = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    c = c + shift * side
    return np.concatenate([c - side * scale / 2, c + side * scale / 2])


def scene_boxes(image: np.ndarray, faces: np.ndarray, rng: np.random.Generator) -> tuple[list, list]:
    """Boxes of each kind around the detected faces of one image: (boxes, kinds)."""
    h, w = image.shape[:2]
    boxes, kinds = [], []
    for box in faces:
        for _ in range(3):
            boxes.append(_moved(box, rng.uniform(-0.08, 0.08, 2), float(np.exp(rng.uniform(-0.12, 0.12)))))
            kinds.append("face")
        angle = rng.uniform(0, 2 * np.pi)
        boxes.append(_moved(box, rng.uniform(0.55, 1.1) * np.array([np.cos(angle), np.sin(angle)]), 1.0))
        kinds.append("shifted")
        boxes.append(_moved(box, rng.uniform(-0.1, 0.1, 2), float(rng.choice([rng.uniform(0.3, 0.4),
                                                                            rng.uniform(2.8, 3.6)]))))
        kinds.append("zoomed")
    side = float(np.median(faces[:, 2] - faces[:, 0])) if len(faces) else min(h, w) / 4
    for _ in range(60):                     # background: a face-sized box touching no face
        if kinds.count("background") >= 3:
            break
        s = side * np.exp(rng.uniform(-0.4, 0.4))
        x, y = rng.uniform(0, max(1, w - s)), rng.uniform(0, max(1, h - s))
        b = np.array([x, y, x + s, y + s])
        if not len(faces) or iou_matrix(b[None], _grown(faces)).max() == 0:
            boxes.append(b)
            kinds.append("background")
    return boxes, kinds


def _grown(faces: np.ndarray) -> np.ndarray:
    return np.stack([_moved(f, np.zeros(2), 1.6) for f in faces])


def scene_crops(images: Iterable[np.ndarray], detector: FaceDetector, rule: CropRule,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops, kinds = [], []
    for image in images:
        det = detector.detect([image])[0]
        keep = det.scores >= 0.9
        faces = det.boxes[keep].astype(np.float64)
        if (det.scores[~keep] >= 0.3).any():
            continue   # an uncertain face would be called background: skip the image
        boxes, k = scene_boxes(image, faces, rng)
        if boxes:
            crops.append(crop_faces(image, np.stack(boxes), rule)[0])
            kinds += k
    return np.concatenate(crops), np.array(kinds)


def wild_crops(path: Path, rule: CropRule, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n faces of a wild label file (context crops) cut down to the network's input, and
    their |yaw| (AFLW's where present)."""
    import torch.nn.functional as F

    with np.load(path) as z:
        rows = np.sort(np.random.default_rng(seed).permutation(len(z["euler"]))[:n])
        ctx = z["crop"][rows]
        yaw = np.abs(z["aflw_yaw"][rows] if "aflw_yaw" in z.files else z["euler"][rows, 0])
    c = ctx.shape[1]
    m = int(round((c - c / CTX_FACTOR) / 2))
    x = torch.from_numpy(ctx[:, m:c - m, m:c - m]).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(rule.size, rule.size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy(), yaw


@torch.inference_mode()
def embed(model: torch.nn.Module, crops: np.ndarray, rule: CropRule, batch: int = 256) -> np.ndarray:
    return np.concatenate([model(to_tensor(crops[i:i + batch], rule))["embedding"].numpy()
                           for i in range(0, len(crops), batch)])


def fit(e: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> Probe:
    """Class-balanced L2-regularised logistic regression on z-scored embeddings (L-BFGS)."""
    mean, std = e.mean(0), e.std(0) + 1e-6
    z = torch.from_numpy((e - mean) / std).double()
    t = torch.from_numpy(y).double()
    wt = torch.where(t > 0, 0.5 / t.mean(), 0.5 / (1 - t.mean()))
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = (wt * torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, t, reduction="none")).mean()
        value = value + l2 * (w ** 2).sum() / 2
        value.backward()
        return value

    opt.step(loss)
    return Probe(mean=mean, std=std, w=w.detach().numpy(), b=float(b.detach()))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y > 0
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def report(probe: Probe, p_scene: np.ndarray, kinds: np.ndarray, p_aflw: np.ndarray, yaw_aflw: np.ndarray,
           p_fer: np.ndarray) -> dict:
    y = (kinds == "face").astype(float)
    t = probe.threshold
    out = {"auc": round(auc(p_scene, y), 4), "threshold": t,
           "rate_above_threshold": {k: round(float((p_scene[kinds == k] >= t).mean()), 4)
                                    for k in KINDS if (kinds == k).any()},
           "n": {k: int((kinds == k).sum()) for k in KINDS}}
    bins = {"0-30": (0, 30), "30-60": (30, 60), "60-90": (60, 91)}
    out["aflw_faces_kept_by_abs_yaw"] = {k: round(float((p_aflw[(yaw_aflw >= lo) & (yaw_aflw < hi)] >= t).mean()), 4)
                                         for k, (lo, hi) in bins.items()}
    out["fer_faces_kept"] = round(float((p_fer >= t).mean()), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path())
    ap.add_argument("--labels", type=Path, default=Path("data/labels"))
    ap.add_argument("--every", type=int, default=6, help="use every Nth frame of each clip")
    ap.add_argument("--wild", type=int, default=2000, help="AFLW and FER faces each, fitted and held out")
    ap.add_argument("--out", type=Path, default=None, help="also write the held-out report here (JSON)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, meta = checkpoint.load(a.checkpoint)
    rule = CropRule.from_meta(meta)
    detector = FaceDetector(DetectorConfig(), threads=2)
    print("cutting scene crops …", flush=True)
    fit_crops, fit_kinds = scene_crops(_images(FIT_CLIPS, FIT_PHOTOS, a.every), detector, rule, a.seed)
    held_crops, held_kinds = scene_crops(_images(HELD_CLIPS, HELD_PHOTOS, a.every), detector, rule, a.seed + 1)
    aflw_fit, _ = wild_crops(a.labels / "aflw_train.npz", rule, a.wild, a.seed)
    fer_fit, _ = wild_crops(a.labels / "fer_train.npz", rule, a.wild // 2, a.seed)
    aflw_held, yaw_held = wild_crops(a.labels / "aflw_heldout.npz", rule, a.wild, a.seed)
    fer_held, _ = wild_crops(a.labels / "fer_heldout.npz", rule, a.wild // 2, a.seed)
    print(f"embedding {len(fit_crops) + len(held_crops) + 3 * a.wild} crops …", flush=True)
    e_fit = np.concatenate([embed(model, c, rule) for c in (fit_crops, aflw_fit, fer_fit)])
    y_fit = np.concatenate([(fit_kinds == "face").astype(float), np.ones(len(aflw_fit) + len(fer_fit))])
    probe = fit(e_fit, y_fit)
    held = report(probe, probe.probs(embed(model, held_crops, rule)), held_kinds,
                  probe.probs(embed(model, aflw_held, rule)), yaw_held, probe.probs(embed(model, fer_held, rule)))
    probe.meta = {"network": {"name": meta.get("name", a.checkpoint.name),
                              "weights_sha256": checkpoint.weights_sha256(a.checkpoint)},
                  "fitted_on": {"clips": FIT_CLIPS, "photos": FIT_PHOTOS, "aflw_train": len(aflw_fit),
                                "fer_train": len(fer_fit), "scene_crops": len(fit_crops)},
                  "heldout": held}
    dest = probe.save(path_for(a.checkpoint))
    if a.out:
        a.out.write_text(json.dumps({"checkpoint": str(a.checkpoint), "held_clips": HELD_CLIPS,
                                     "held_photos": HELD_PHOTOS, **held}, indent=2))
    print(json.dumps(held, indent=2))
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
