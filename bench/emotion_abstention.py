"""Which faces the emotion label abstains on, and what the label is worth where it does not.

The label (workers.emotion_labels.label) gives no class to a face that is too small, too
dark, too blurred or too turned (workers.face_quality measures light and sharpness on the
crop), and says ``uncertain`` where the classifier's top probability is below
``emotion.min_prob``. This bench measures those rules on real faces:

* FER2013's held-out faces (``training.wild_labels.heldout`` of ``fer2013/train.parquet``,
  never trained or calibrated on), each face's frame taken as its box (FER2013 faces fill
  their 48-px frame; ``training.wild_teach.prior_box``), cut with the checkpoint's crop rule
  and read as shipped (mirror-averaged);
* the real clips of ``shared/data/real/video`` (talking heads, a 1080p crowd) and of its
  ``cuts/`` (a film trailer with dim faces, a documentary), every ``--every``-th frame,
  RetinaFace at ``--max-side`` px.

It prints: per source, the faces each abstention takes (with the class the classifier
would have named there); on FER2013, the classifier's accuracy on the faces each new rule
removes and on those it keeps; the coverage / accuracy curve of ``min_prob`` with the
size, light, sharpness and pose rules applied (the share of all held-out faces that get a
class, and how many of those are right), and the largest ``min_prob`` of the curve that
labels at least ``--coverage`` of them. Thresholds are the configured ones
(``EmotionConfig``'s defaults unless ``--config``).

    nice .venv/bin/python bench/emotion_abstention.py [--every 3] [--cache out/abstention.npz] \\
        [--plot docs/img/emotion_coverage.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402
from streamer.config import DetectorConfig, load_config  # noqa: E402
from training.emotion_eval import abstention_curve  # noqa: E402
from training.wild_data import FER  # noqa: E402
from training.wild_labels import heldout  # noqa: E402
from training.wild_teach import prior_box  # noqa: E402
from workers.emotion_labels import (  # noqa: E402
    EMOTION_ABSTAIN,
    EMOTION_CLASSES,
    EmotionConfig,
    EmotionSource,
    label,
)

VIDEO = REPO.parent / "shared" / "data" / "real" / "video"
MEASURES = ("probs", "face_px", "yaw", "pitch", "luminance", "contrast", "sharpness")
# FER2013 made dark (gain) and blurred (Gaussian sigma, frame px) to see where labels fail
DEGRADE = {"dark": (0.25, 0.12, 0.07, 0.04), "blur": (1.5, 2.5, 4.0)}
CURVE = (0.0, 0.2, 0.25, 0.28, 0.3, 0.32, 0.34, 0.36, 0.37, 0.38, 0.4, 0.42, 0.44, 0.46, 0.5, 0.6, 0.7)


def _faces(faces_list: list, poses_of) -> dict:
    """Per-face arrays of ImageFaces (workers.pipeline), concatenated."""
    out: dict[str, list] = {k: [] for k in MEASURES}
    for f in faces_list:
        if not len(f) or f.prediction is None:
            continue
        p = f.prediction
        poses = poses_of(p, f.affines)
        out["probs"].append(p.emotion_probs)
        out["face_px"].append(np.minimum(f.boxes[:, 2] - f.boxes[:, 0], f.boxes[:, 3] - f.boxes[:, 1]))
        out["yaw"].append(poses[:, 0])
        out["pitch"].append(poses[:, 1])
        for k in ("luminance", "contrast", "sharpness"):
            out[k].append(getattr(p, k))
    return {k: np.concatenate(v) if v else np.zeros((0, 7) if k == "probs" else 0) for k, v in out.items()}


def fer_images() -> tuple[np.ndarray, np.ndarray]:
    """The held-out FER2013 images (N, 48, 48, 3) and their true class indices."""
    data = FER.read()
    keep = heldout(data["name"])
    return data["image"][keep], np.array([EMOTION_CLASSES.index(c) for c in data["emotion"][keep]])


def degrade(images: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """FER2013 frames made dark (``level`` the gain on grey levels, with a sensor's noise of
    1.5 grey levels and its 8-bit rounding) or blurred (a Gaussian of ``level`` frame px)."""
    import cv2

    if kind == "dark":
        noise = np.random.default_rng(seed).normal(0, 1.5, images.shape[:3])[..., None]
        return np.clip(np.rint(images * level + noise), 0, 255).astype(np.uint8)
    return np.stack([cv2.GaussianBlur(im, (0, 0), sigmaX=level) for im in images]) if level else images


def fer_heldout(regressor, rule, images: np.ndarray, y: np.ndarray, batch: int = 256) -> dict:
    """FER2013 faces read as shipped, each frame its box; ``y`` the true class index."""
    from streamer.pipeline.records import pose_in_image
    from workers.pipeline import crop_boxes, regress

    box = prior_box(FER)[None].astype(np.float32)
    parts = []
    for s in range(0, len(images), batch):
        faces = [crop_boxes(im, box, np.ones(1, np.float32), rule) for im in images[s:s + batch]]
        parts.append(_faces(regress(faces, regressor, rule), pose_in_image))
    out = {k: np.concatenate([p[k] for p in parts]) for k in MEASURES}
    out["y"] = y
    return out


def video_faces(path: Path, every: int, detector, regressor, rule) -> dict:
    """Faces RetinaFace finds in every ``every``-th frame of a clip, read as shipped."""
    import av

    from streamer.pipeline.records import pose_in_image
    from workers.pipeline import detect_and_crop, regress

    frames = []
    with av.open(str(path)) as c:
        for i, fr in enumerate(c.decode(video=0)):
            if i % every == 0:
                frames.append(fr.to_ndarray(format="rgb24"))
    parts = []
    for s in range(0, len(frames), 8):
        parts.append(_faces(regress(detect_and_crop(frames[s:s + 8], detector, rule), regressor, rule), pose_in_image))
    return {k: np.concatenate([p[k] for p in parts]) for k in MEASURES} | {"frames": np.array(len(frames))}


def measure_all(args, have: dict[str, dict]) -> dict[str, dict]:
    """Every source's per-face measurements; those in ``have`` (a cache) are not measured again."""
    import torch

    from workers.crops import CropRule
    from workers.detector import FaceDetector
    from workers.regressor import Regressor

    torch.set_num_threads(args.threads)
    regressor = Regressor.load(args.checkpoint, "cpu", EmotionSource(args.emotion))
    rule = CropRule.from_meta(regressor.meta)
    detector = FaceDetector(DetectorConfig(max_side=args.max_side), threads=args.threads)
    sources = dict(have)
    t0 = time.perf_counter()
    images, y = fer_images()
    if "FER2013 held out" not in sources:
        sources["FER2013 held out"] = fer_heldout(regressor, rule, images, y)
    sub = slice(None, None, args.degrade_every)
    for kind, levels in DEGRADE.items():
        for level in levels:
            if f"{kind} {level:g}" not in sources:
                sources[f"{kind} {level:g}"] = fer_heldout(regressor, rule, degrade(images[sub], kind, level), y[sub])
                print(f"{kind} {level:g} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print(f"FER2013 held out: {len(sources['FER2013 held out']['y'])} faces ({time.perf_counter() - t0:.0f} s)",
          file=sys.stderr)
    clips = sorted((VIDEO / "cuts").glob("*.mp4")) + sorted(VIDEO.glob("*.mp4"))
    for clip in clips:
        if clip.stem == "fades" or clip.stem in sources:    # nature shots, no faces; or measured
            continue
        sources[clip.stem] = video_faces(clip, args.every, detector, regressor, rule)
        print(f"{clip.stem}: {len(sources[clip.stem]['face_px'])} faces ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
    return sources


def labels_of(d: dict, rule: EmotionConfig) -> np.ndarray:
    return np.array(label(d["probs"], d["face_px"], d["yaw"], d["pitch"], rule,
                          luminance=d["luminance"], contrast=d["contrast"], sharpness=d["sharpness"]))


def source_table(sources: dict[str, dict], rule: EmotionConfig) -> str:
    """Per source: faces each abstention takes, and what the classifier said there."""
    rows = ["| source | faces | " + " | ".join(EMOTION_ABSTAIN) + " | labelled | "
            "too_dark + too_blurred: the classifier's top class there |",
            "|---|---|" + "---|" * (len(EMOTION_ABSTAIN) + 2)]
    for name, d in sources.items():
        n = len(d["face_px"])
        if not n:
            rows.append(f"| {name} | 0 |" + " - |" * (len(EMOTION_ABSTAIN) + 2))
            continue
        lab = labels_of(d, rule)
        cells = [f"{int((lab == a).sum())} ({(lab == a).mean():.0%})" for a in EMOTION_ABSTAIN]
        gone = np.isin(lab, ("too_dark", "too_blurred"))
        top = np.asarray(EMOTION_CLASSES)[np.nan_to_num(d["probs"][gone], nan=0).argmax(1)] if gone.any() else []
        names, counts = np.unique(top, return_counts=True)
        said = ", ".join(f"{c} {k}" for c, k in sorted(zip(names, counts), key=lambda t: -t[1])) or "-"
        labelled = np.isin(lab, EMOTION_CLASSES).mean()
        rows.append(f"| {name} | {n} | " + " | ".join(cells) + f" | {labelled:.0%} | {said} |")
    return "\n".join(rows)


def accuracy_line(fer: dict) -> str:
    """FER2013 held out: top-1 with its standard error, macro-F1 and F1 per class."""
    from training.evaluate_wild import macro_f1

    pred, n = fer["probs"].argmax(1), len(fer["y"])
    acc = float((pred == fer["y"]).mean())
    f1, per = macro_f1(np.asarray(EMOTION_CLASSES)[fer["y"]], np.asarray(EMOTION_CLASSES)[pred])
    classes = ", ".join(f"{c} {v:.2f}" for c, v in per.items())
    se = np.sqrt(acc * (1 - acc) / n)
    return f"FER2013 held out: top-1 {acc:.3f} ± {se:.3f} ({n} faces), macro-F1 {f1:.3f}; F1 {classes}"


def removal_table(fer: dict, rule: EmotionConfig) -> str:
    """FER2013 held out: the classifier's top-class accuracy on the faces each rule removes
    and on those it keeps (before min_prob), with its confidence there."""
    right = fer["probs"].argmax(1) == fer["y"]
    conf = fer["probs"].max(1)
    loose = EmotionConfig(**{**vars(rule), "min_prob": 0.0})
    lab = labels_of(fer, loose)
    rows = ["| rule (FER2013 held out) | faces removed | their accuracy | their mean top probability "
            "| faces kept | their accuracy |", "|---|---|---|---|---|---|"]
    for name in ("too_small", "too_dark", "too_blurred", "too_turned"):
        gone = lab == name
        acc = f"{right[gone].mean():.3f}" if gone.any() else "-"
        mc = f"{conf[gone].mean():.3f}" if gone.any() else "-"
        rows.append(f"| {name} | {int(gone.sum())} ({gone.mean():.1%}) | {acc} | {mc} | "
                    f"{int((~gone).sum())} | {right[~gone].mean():.3f} |")
    kept = np.isin(lab, EMOTION_CLASSES)
    rows.append(f"| all four | {int((~kept).sum())} ({(~kept).mean():.1%}) | "
                f"{right[~kept].mean() if (~kept).any() else float('nan'):.3f} | "
                f"{conf[~kept].mean() if (~kept).any() else float('nan'):.3f} | {int(kept.sum())} | "
                f"{right[kept].mean():.3f} |")
    return "\n".join(rows)


def degrade_table(degraded: dict[str, dict], rule: EmotionConfig) -> str:
    """Per degradation: the measures' medians, the classifier's accuracy, and what the light
    and sharpness rules take (with the accuracy of what they take and of what they keep)."""
    loose = EmotionConfig(**{**vars(rule), "min_prob": 0.0})
    rows = ["| FER2013 held out made | median luminance / contrast / sharpness | accuracy | top class most "
            "named | too_dark | too_blurred | accuracy of those taken / kept |", "|---|---|---|---|---|---|---|"]
    for name, d in degraded.items():
        right = d["probs"].argmax(1) == d["y"]
        lab = labels_of(d, loose)
        gone = np.isin(lab, ("too_dark", "too_blurred"))
        names, counts = np.unique(d["probs"].argmax(1), return_counts=True)
        most = f"{EMOTION_CLASSES[names[counts.argmax()]]} {counts.max() / len(right):.0%}"
        taken = f"{right[gone].mean():.3f}" if gone.any() else "-"
        kept = f"{right[~gone].mean():.3f}" if (~gone).any() else "-"
        kind, level = name.split(" ")
        what = f"dark (x{level})" if kind == "dark" else f"blurred (sigma {level} px of 48)"
        rows.append(f"| {what} | {np.median(d['luminance']):.0f} / {np.median(d['contrast']):.1f} / "
                    f"{np.median(d['sharpness']):.2f} | {right.mean():.3f} | {most} | "
                    f"{(lab == 'too_dark').mean():.0%} | {(lab == 'too_blurred').mean():.0%} | {taken} / {kept} |")
    return "\n".join(rows)


def coverage_curve(fer: dict, rule: EmotionConfig) -> list[dict]:
    """training.emotion_eval.abstention_curve over the faces the other rules keep, as shares
    of all held-out faces."""
    loose = EmotionConfig(**{**vars(rule), "min_prob": 0.0})
    kept = np.isin(labels_of(fer, loose), EMOTION_CLASSES)
    curve = abstention_curve(fer["probs"][kept], fer["y"][kept], CURVE)
    for r in curve:
        r["labelled"] *= kept.mean()
    return curve


def curve_table(curve: list[dict], current: float) -> str:
    head = "| min_prob | " + " | ".join(f"**{r['min_prob']:g}**" if r["min_prob"] == current else f"{r['min_prob']:g}"
                                      for r in curve) + " |"
    return "\n".join([head, "|---|" + "---|" * len(curve),
                      "| faces labelled | " + " | ".join(f"{r['labelled']:.1%}" for r in curve) + " |",
                      "| accuracy of those labels | " + " | ".join(f"{r['accuracy']:.3f}" for r in curve) + " |"])


def plot(curve: list[dict], chosen: float, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 3.2), dpi=90)
    ax = fig.subplots()
    cov = [100 * r["labelled"] for r in curve]
    acc = [r["accuracy"] for r in curve]
    ax.plot(cov, acc, "o-", ms=3)
    for r, c, a in zip(curve, cov, acc):
        if r["min_prob"] in (0.0, 0.3, chosen, 0.5, 0.7):
            ax.annotate(f"{r['min_prob']:g}", (c, a), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        fontweight="bold" if r["min_prob"] == chosen else "normal")
    ax.axvline(85, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("held-out FER2013 faces labelled (%)")
    ax.set_ylabel("accuracy of those labels")
    ax.set_title("emotion.min_prob: coverage against accuracy", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))


def main(argv=None) -> int:
    from workers import checkpoint

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=int, default=3, help="read every k-th frame of each clip")
    ap.add_argument("--max-side", type=int, default=960, help="RetinaFace's frame side (px)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", default=str(checkpoint.default_path()))
    ap.add_argument("--config", help="a ray_config.yaml whose emotion section to measure")
    ap.add_argument("--emotion", choices=[e.value for e in EmotionSource], default=EmotionSource.BRANCH.value,
                    help="what reads emotion (model.emotion): the shipped branch, or the classifier over eta")
    ap.add_argument("--degrade-every", type=int, default=4, help="degrade every k-th held-out FER2013 face")
    ap.add_argument("--coverage", type=float, default=0.85, help="the share of faces that must get a class")
    ap.add_argument("--cache", type=Path, help="per-face measurements: read if there, else written")
    ap.add_argument("--plot", type=Path, help="the coverage / accuracy curve as a PNG")
    args = ap.parse_args(argv)
    # min_prob, unless the config sets one, is the reader's own (0.37 branch, 0.32 eta)
    configured = load_config(args.config).emotion if args.config else EmotionConfig()
    rule = configured.for_reader(EmotionSource(args.emotion))
    current = rule.min_prob
    assert current is not None
    have: dict[str, dict] = {}
    if args.cache and args.cache.exists():
        z = np.load(args.cache)
        names = sorted({k.split("/")[0] for k in z.files}, key=lambda n: (n != "FER2013 held out", n))
        have = {n: {k.split("/")[1]: z[k] for k in z.files if k.split("/")[0] == n} for n in names}
    wanted = {f"{kind} {level:g}" for kind, levels in DEGRADE.items() for level in levels} | {"FER2013 held out"}
    sources = have if wanted <= set(have) else measure_all(args, have)
    if args.cache and sources is not have:
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.cache, **{f"{n}/{k}": v for n, d in sources.items() for k, v in d.items()})
    fer = sources["FER2013 held out"]
    degraded = {n: d for n, d in sources.items() if n.split(" ")[0] in DEGRADE}
    sources = {n: d for n, d in sources.items() if n not in degraded}
    print(f"{machine()['cpu']}; emotion from {args.emotion}; thresholds: {rule}\n")
    print(accuracy_line(fer) + "\n")
    print("Faces per source and the abstention each gets (labelled: a class)\n")
    print(source_table(sources, rule) + "\n")
    print(removal_table(fer, rule) + "\n")
    print("Held-out FER2013 faces made dark or blurred (every "
          f"{args.degrade_every}th face; accuracy of the classifier's top class):\n")
    print(degrade_table(degraded, rule) + "\n")
    curve = coverage_curve(fer, rule)
    ok = [r["min_prob"] for r in curve if r["labelled"] >= args.coverage]
    chosen = max(ok) if ok else 0.0
    print(f"min_prob with size, light, sharpness and pose rules applied ({len(fer['y'])} held-out FER2013 faces):\n")
    print(curve_table(curve, current) + "\n")
    r = next(r for r in curve if r["min_prob"] == chosen)
    print(f"largest min_prob labelling at least {args.coverage:.0%}: {chosen:g} "
          f"({r['labelled']:.1%} labelled, accuracy {r['accuracy']:.3f})")
    print("\nMeasures per source: percentiles 1 / 5 / 25 / 50 of luminance, contrast, sharpness")
    for name, d in sources.items():
        if len(d["face_px"]):
            print(name, *(f"{k} " + "/".join(f"{v:.2f}" for v in np.nanpercentile(d[k], (1, 5, 25, 50)))
                         for k in ("luminance", "contrast", "sharpness")))
    if args.plot:
        plot(curve, current, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
