"""How well faces' identity embeddings tell people apart, and where the person thresholds sit.

Measures ``workers.identity`` (dlib's ResNet face embedding behind its 5-point alignment,
on patches cut around RetinaFace boxes) beside the shipped network's 99-D shape alpha
(cosine distance), and calibrates ``SAME_PERSON_MAX``, ``SPLIT_MIN`` and ``MIN_FACE_PX``:

* ``../shared/data/identity``: 25 web photos, 300 labelled pairs (largest face per photo):
  verification AUC. A smoke test (38 same-person pairs), not a benchmark.
* the single-person clips of ``../shared/data/real/video`` and ``real/obama.mp4``
  (``crowd_1080p`` left out): ``--frames`` frames per clip spread over it, the largest face
  in each; every clip is one person, and clips of one person (looked at: ``st_wda_aoc`` and
  ``vr_3`` are both Alexandria Ocasio-Cortez) share a label. Verification AUC over all
  pairs, leave-one-out 1-NN identification, the same-person distances (within a clip,
  across clips of one person) and different-person distances, same-person distances by
  |yaw| (the regressor's), and the rates the thresholds give where they are applied:
  a track's mean against a person's mean (link: two halves of a clip against each other
  and against other persons' clips) and a new sample against its track's running mean
  (split: a frame against the mean of its clip's other frames, and against other persons'
  clip means).
* face size: the clips' frames shrunk (area averaging) until the face box is ``S`` px
  and embedded again, against the full-size clip means: where a small face stops linking.
* the shape predictor's rectangle: dlib's 5-point predictor was trained on dlib's HOG
  detector boxes; the HOG detector is run on the same frames, its boxes expressed relative
  to RetinaFace's (the fitted ``_DLIB_RECT``), and both rectangles are compared by
  alignment (the predictor's eye centres against RetinaFace's, per inter-ocular distance)
  and by verification.
* the cost per face (cut, and embed at batch 1 and 8), one thread.

    .venv/bin/python bench/identity_accuracy.py [--frames 10] [--json OUT] [--baseline CKPT] [--plot PNG]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402
from workers import checkpoint  # noqa: E402
from workers import identity as ident  # noqa: E402
from workers.crops import CropRule, crop_affines, crop_faces, to_tensor  # noqa: E402
from workers.detector import FaceDetector  # noqa: E402
from workers.identity import FaceIdentity, IdentityCropRule  # noqa: E402
from workers.regressor import Regressor  # noqa: E402

DATA = REPO.parent / "shared" / "data"
PHOTOS = DATA / "identity"
CLIPS = sorted(p for p in (DATA / "real" / "video").glob("*.mp4")
               if p.stem != "crowd_1080p") + [DATA / "real" / "obama.mp4"]
# clips that show one person (checked by looking at frames of every clip)
SAME_PERSON = {"st_wda_aoc": "aoc", "vr_3": "aoc"}
BOX_RECT = (0.0, 0.0, 1.0)   # the predictor reads the RetinaFace box (made square) as it is


@dataclass
class DetectorSettings:
    batch_size: int = 1
    max_side: int = 640
    score_threshold: float = 0.75
    nms_threshold: float = 0.4
    min_face_px: int = 20


@dataclass
class Faces:
    """The largest face of each image: the image, its box and landmarks, its label."""
    images: list
    boxes: np.ndarray      # (N, 4)
    points: np.ndarray     # (N, 5, 2) RetinaFace landmarks
    labels: np.ndarray     # (N,) str: person
    groups: np.ndarray     # (N,) str: clip or photo


def largest(detector, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for det in detector.detect(images):
        if not len(det):
            out.append(None)
            continue
        area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
        i = int(np.argmax(area))
        out.append((det.boxes[i].astype(np.float64), det.landmarks[i].astype(np.float64)))
    return out


def collect(detector, images: list, labels: list, groups: list) -> Faces:
    keep, boxes, points = [], [], []
    for i, found in enumerate(largest(detector, images)):
        if found is not None:
            keep.append(i)
            boxes.append(found[0])
            points.append(found[1])
    return Faces([images[i] for i in keep], np.array(boxes).reshape(-1, 4), np.array(points).reshape(-1, 5, 2),
                 np.array([labels[i] for i in keep]), np.array([groups[i] for i in keep]))


def read_frames(path: Path, n: int, turned: int, detector, scan_every: int = 6) -> list[np.ndarray]:
    """``n`` RGB frames spread evenly over the clip (as a player shows it), then the ``turned``
    most turned of every ``scan_every``-th frame (RetinaFace landmarks: the nose's offset from
    the eyes' midpoint per inter-ocular distance), at least ``scan_every`` frames from those."""
    import av

    with av.open(str(path)) as f:
        frames = [fr.to_ndarray(format="rgb24") if i % scan_every == 0 else None
                  for i, fr in enumerate(f.decode(video=0))]
    even = np.linspace(0, len(frames) - 1, n).round().astype(int)
    with av.open(str(path)) as f:
        wanted = set(even.tolist())
        picked = {i: fr.to_ndarray(format="rgb24") for i, fr in enumerate(f.decode(video=0)) if i in wanted}
    if turned:
        scanned = [i for i, fr in enumerate(frames) if fr is not None]
        turn = np.zeros(len(scanned))
        for k, found in enumerate(largest(detector, [frames[i] for i in scanned])):
            if found is not None:
                p = found[1]
                turn[k] = abs(p[2, 0] - (p[0, 0] + p[1, 0]) / 2) / max(abs(p[1, 0] - p[0, 0]), 1.0)
        for k in np.argsort(-turn):
            if len(picked) >= n + turned:
                break
            if min(abs(scanned[k] - i) for i in picked) >= scan_every:
                picked[scanned[k]] = frames[scanned[k]]
    return [picked[i] for i in sorted(picked)]


def photos(detector) -> tuple[Faces, list[tuple[str, str, int]]]:
    names = sorted(p.name for p in (PHOTOS / "images").glob("*.jpg"))
    images = [cv2.cvtColor(cv2.imread(str(PHOTOS / "images" / n)), cv2.COLOR_BGR2RGB) for n in names]
    rows = [line.split(",") for line in (PHOTOS / "pairs.csv").read_text().split()[1:]]
    pairs = [(a, b, int(s)) for a, b, s in rows]
    # a person label per photo from the same-person pairs (connected components)
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n
    for a, b, s in pairs:
        if s:
            parent[root(a)] = root(b)
    return collect(detector, images, [root(n) for n in names], names), pairs


def clips(detector, frames: int, turned: int) -> Faces:
    images, labels, groups = [], [], []
    for path in CLIPS:
        for image in read_frames(path, frames, turned, detector):
            images.append(image)
            labels.append(SAME_PERSON.get(path.stem, path.stem))
            groups.append(path.stem)
    return collect(detector, images, labels, groups)


# ----------------------------------------------------------------------------------- metrics

def auc(d_same: np.ndarray, d_diff: np.ndarray) -> float:
    """P(a same-person distance < a different-person distance), ties half."""
    d_same, d_diff = np.sort(np.asarray(d_same)), np.sort(np.asarray(d_diff))
    below = np.searchsorted(d_same, d_diff, side="left")
    ties = np.searchsorted(d_same, d_diff, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(d_same) * len(d_diff)))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1.0 - a @ b.T


def pair_split(D: np.ndarray, labels: np.ndarray, groups: np.ndarray):
    """Upper-triangle distances: within a clip, same person across clips, different persons."""
    iu = np.triu_indices(len(D), 1)
    d = D[iu]
    same = labels[iu[0]] == labels[iu[1]]
    within = groups[iu[0]] == groups[iu[1]]
    return d[same & within], d[same & ~within], d[~same], iu


def one_nn(D: np.ndarray, labels: np.ndarray) -> float:
    D = D.copy()
    np.fill_diagonal(D, np.inf)
    has_mate = np.array([(labels == lab).sum() > 1 for lab in labels])
    return float(np.mean(labels[D.argmin(1)][has_mate] == labels[has_mate]))


def pct(x: np.ndarray, q) -> list[float]:
    return [round(float(v), 3) for v in np.percentile(x, q)] if len(x) else []


def track_rates(E: np.ndarray, labels: np.ndarray, groups: np.ndarray, dist) -> dict:
    """Distances where the thresholds act. link: a clip's first half mean against its second
    half mean (same) and against other persons' full-clip means (different); split: each frame
    against the mean of its clip's other frames (same) and against other persons' clip means."""
    names = sorted(set(groups))
    means = {g: E[groups == g].mean(0) for g in names}
    person = {g: labels[groups == g][0] for g in names}
    link_same, link_diff, split_same, split_diff = [], [], [], []
    for g in names:
        rows = E[groups == g]
        half = len(rows) // 2
        a, b = rows[:half].mean(0), rows[half:].mean(0)
        link_same.append(dist(a[None], b[None])[0, 0])
        for h in names:
            if person[h] != person[g]:
                link_diff.append(dist(a[None], means[h][None])[0, 0])
        for i in range(len(rows)):
            rest = np.delete(rows, i, axis=0).mean(0)
            split_same.append(dist(rows[i][None], rest[None])[0, 0])
            split_diff.extend(dist(rows[i][None], np.array([means[h] for h in names if person[h] != person[g]]))[0])
    return {k: np.array(v) for k, v in
            dict(link_same=link_same, link_diff=link_diff, split_same=split_same, split_diff=split_diff).items()}


def rates_at(r: dict, t: float) -> dict:
    return {"false_link": float(np.mean(r["link_diff"] < t)), "missed_link": float(np.mean(r["link_same"] >= t)),
            "false_split": float(np.mean(r["split_same"] >= t)), "missed_jump": float(np.mean(r["split_diff"] < t)),
            "pair_false_link": float(np.mean(r["pair_diff"] < t)), "pair_missed": float(np.mean(r["pair_same"] >= t))}


# ------------------------------------------------------------------------------- embeddings

def embed(model: FaceIdentity, faces: Faces, rule: IdentityCropRule) -> np.ndarray:
    return np.concatenate([model.embed(rule.cut(img, box[None])) for img, box in zip(faces.images, faces.boxes)])


def regress(reg: Regressor, faces: Faces) -> tuple[np.ndarray, np.ndarray]:
    """alpha (N, 99) and yaw (N,) degrees from the shipped network."""
    rule = CropRule.from_meta(reg.meta)
    shape, yaw = [], []
    for img, box in zip(faces.images, faces.boxes):
        crops, _ = crop_faces(img, box[None], rule)
        pred = reg(to_tensor(crops, rule))
        shape.append(pred.shape[0])
        yaw.append(pred.euler[0, 0])
    return np.array(shape), np.array(yaw)


def hog_rect(faces: Faces) -> tuple[tuple[float, float, float], int]:
    """dlib's HOG detector box relative to the RetinaFace box (made square): median
    (dx, dy, k) over the faces both find, and how many that is."""
    import dlib  # type: ignore[import-untyped]

    hog = dlib.get_frontal_face_detector()
    rel = []
    for img, box in zip(faces.images, faces.boxes):
        s = max(box[2] - box[0], box[3] - box[1])
        up = 1 if s < 100 else 0
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for r in hog(img, up):
            hx, hy = (r.left() + r.right() + 1) / 2, (r.top() + r.bottom() + 1) / 2
            if box[0] < hx < box[2] and box[1] < hy < box[3]:
                rel.append(((hx - cx) / s, (hy - cy) / s, (r.width() + r.height()) / 2 / s))
                break
    return tuple(float(v) for v in np.median(np.array(rel), axis=0)), len(rel)  # type: ignore[return-value]


def eye_error(model: FaceIdentity, faces: Faces, rule: IdentityCropRule) -> np.ndarray:
    """Per face: the predictor's eye centres against RetinaFace's, mean error per
    inter-ocular distance (both in patch pixels)."""
    errs = []
    for img, box, pts in zip(faces.images, faces.boxes, faces.points):
        patch = rule.cut(img, box[None])
        p5 = model.landmarks(patch)[0]
        eyes = np.array([p5[0:2].mean(0), p5[2:4].mean(0)])
        eyes = eyes[np.argsort(eyes[:, 0])]
        A = crop_affines(box[None], CropRule(size=rule.side, enlarge=(rule.margin - 1) / 2))[0]
        ref = (pts[:2] - A[:, 2]) / A[0, 0]       # image -> patch pixels
        ref = ref[np.argsort(ref[:, 0])]
        errs.append(np.linalg.norm(eyes - ref, axis=1).mean() / np.linalg.norm(ref[1] - ref[0]))
    return np.array(errs)


def shrunk(faces: Faces, side: float) -> tuple[list, np.ndarray]:
    """The frames scaled down (area averaging) so each face box is ``side`` px on its shorter
    side (as the detector's ``min_face_px`` counts)."""
    images, boxes = [], []
    for img, box in zip(faces.images, faces.boxes):
        f = min(1.0, side / min(box[2] - box[0], box[3] - box[1]))
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        images.append(small)
        boxes.append(box * np.array([small.shape[1] / w, small.shape[0] / h] * 2))
    return images, np.array(boxes)


def cost(model: FaceIdentity, faces: Faces, rule: IdentityCropRule) -> dict:
    patches = np.concatenate([rule.cut(img, box[None]) for img, box in zip(faces.images[:16], faces.boxes[:16])])
    out = {}
    t = time.perf_counter()
    for img, box in zip(faces.images[:16], faces.boxes[:16]):
        rule.cut(img, box[None])
    out["cut_ms"] = (time.perf_counter() - t) * 1000 / 16
    for batch in (1, 8):
        model.embed(patches[:batch])  # warm
        cpu0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for start in range(0, 16, batch):
            model.embed(patches[start:start + batch])
        wall = time.perf_counter() - t
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        out[f"embed_ms_batch{batch}"] = wall * 1000 / 16
        out[f"embed_cpu_ms_batch{batch}"] = cpu * 1000 / 16
    return out


# -------------------------------------------------------------------------------------- main

def representation_table(reps: dict, ph: Faces, cl: Faces, pi: np.ndarray, ps: np.ndarray,
                         out: dict) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Print (and store in ``out``) each representation's verification and 1-NN numbers;
    return what ``plot_distances`` draws: same- and different-person clip distances."""
    print("\n| representation | photos AUC | photos 1-NN | clips AUC | clips 1-NN | same within clip p50/p95/max "
          "| same across clips p50/max | different min/p1/p5/p50 |")
    print("|---|---|---|---|---|---|---|---|")
    out["representations"] = {}
    drawn: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for name, (a_ph, a_cl, dist) in reps.items():
        Dp = dist(a_ph, a_ph)
        Dc = dist(a_cl, a_cl)
        within, across, diff, _ = pair_split(Dc, cl.labels, cl.groups)
        if "box as rect" not in name:
            drawn[name] = (np.concatenate([within, across]), diff, auc(np.concatenate([within, across]), diff))
        row = {"photos_auc": auc(Dp[pi[:, 0], pi[:, 1]][ps], Dp[pi[:, 0], pi[:, 1]][~ps]),
               "photos_1nn": one_nn(Dp, ph.labels),
               "clips_auc": auc(np.concatenate([within, across]), diff), "clips_1nn": one_nn(Dc, cl.labels),
               "same_within": pct(within, [50, 95, 100]), "same_across": pct(across, [50, 100]),
               "different": pct(diff, [0, 1, 5, 50])}
        out["representations"][name] = row
        print(f"| {name} | {row['photos_auc']:.3f} | {row['photos_1nn']:.3f} | {row['clips_auc']:.4f} | "
              f"{row['clips_1nn']:.3f} | {'/'.join(map(str, row['same_within']))} | "
              f"{'/'.join(map(str, row['same_across']))} | {'/'.join(map(str, row['different']))} |", flush=True)

    return drawn


def plot_distances(drawn: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path) -> None:
    """One panel per representation: how far apart the clips' faces of one person are, and
    faces of different people (each panel on its own distance scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(drawn), figsize=(4.2 * len(drawn), 3.2), squeeze=False)
    for ax, (name, (same, diff, a)) in zip(axes[0], drawn.items()):
        bins = np.linspace(0, max(np.percentile(diff, 99.5), same.max()), 60)
        ax.hist(diff, bins, density=True, alpha=0.55, color="#c44e52", label="different people")
        ax.hist(same, bins, density=True, alpha=0.55, color="#4c72b0", label="same person")
        ax.set_title(f"{name}\nverification AUC {a:.3f}", fontsize=9)
        ax.set_xlabel("distance", fontsize=8)
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8)
    fig.suptitle("faces of the held-out clips: how far apart", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10, help="frames per clip, spread over it")
    ap.add_argument("--turned", type=int, default=3, help="most turned frames added per clip")
    ap.add_argument("--sizes", default="48,32,28,24,20",
                    help="face sizes for the size sweep (shorter box side, px)")
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path())
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--baseline", type=Path, help="another checkpoint whose alpha is measured beside the shipped one's")
    ap.add_argument("--baseline-name", default="baseline", help="what to call the baseline in tables and plots")
    ap.add_argument("--plot", type=Path, help="draw same- and different-person distances on the clips here (PNG)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    out: dict = {"machine": machine(), "frames_per_clip": args.frames}
    detector = FaceDetector(DetectorSettings(), threads=1)
    rule = IdentityCropRule()
    ph, pairs = photos(detector)
    cl = clips(detector, args.frames, args.turned)
    print(f"photos: {len(ph.boxes)} faces, {len(pairs)} pairs; clips: {len(set(cl.groups))} clips, "
          f"{len(set(cl.labels))} persons, {len(cl.boxes)} faces; median face box side "
          f"{np.median(np.max(cl.boxes[:, 2:] - cl.boxes[:, :2], 1)):.0f} px")

    # --- the predictor's rectangle
    fitted, n_hog = hog_rect(cl)
    out["hog_rect"] = {"dx_dy_k": fitted, "faces": n_hog}
    print(f"\ndlib HOG box relative to the square RetinaFace box (median over {n_hog} faces): "
          f"centre {fitted[0]:+.3f}, {fitted[1]:+.3f} x side, side {fitted[2]:.3f} x; "
          f"shipped _DLIB_RECT {ident._DLIB_RECT}")
    variants = {"shipped rect": tuple(ident._DLIB_RECT), "box as rect": BOX_RECT}
    if max(abs(a - b) for a, b in zip(fitted, ident._DLIB_RECT)) > 0.01:   # the fit has moved
        variants["this fit"] = tuple(round(v, 3) for v in fitted)

    reg = Regressor.load(str(args.checkpoint), device="cpu")
    alpha_ph, _ = regress(reg, ph)
    alpha_cl, yaw = regress(reg, cl)
    index = {n: i for i, n in enumerate(ph.groups)}
    pi = np.array([(index[a], index[b]) for a, b, _ in pairs if a in index and b in index])
    ps = np.array([s for a, b, s in pairs if a in index and b in index], bool)

    reps: dict[str, tuple] = {}
    for name, rect in variants.items():
        model = FaceIdentity(rule, dlib_rect=rect)
        reps[f"dlib embedding, {name}"] = (embed(model, ph, rule), embed(model, cl, rule), FaceIdentity.distance)
        err = eye_error(model, cl, rule)
        out.setdefault("eye_error", {})[name] = pct(err, [50, 90, 99])
    e_ph, e_cl, _ = reps["dlib embedding, shipped rect"]
    reps["alpha (99-D), cosine"] = (alpha_ph, alpha_cl, cosine)
    if args.baseline is not None:
        base = Regressor.load(str(args.baseline), device="cpu")
        reps[f"alpha (99-D), {args.baseline_name}, cosine"] = (regress(base, ph)[0], regress(base, cl)[0], cosine)
    print("\nalignment: predictor eye centres vs RetinaFace's, error / inter-ocular (median, p90, p99): " +
          "; ".join(f"{k} {v}" for k, v in out["eye_error"].items()))

    drawn = representation_table(reps, ph, cl, pi, ps, out)
    if args.plot is not None:
        plot_distances(drawn, args.plot)

    # --- the shipped embedding: photos, closest people, yaw, thresholds, size
    model = FaceIdentity(rule)
    dist = FaceIdentity.distance
    dp = dist(e_ph, e_ph)[pi[:, 0], pi[:, 1]]
    out["photos_distances"] = {"same": pct(dp[ps], [0, 50, 100]), "different": pct(dp[~ps], [0, 5, 50])}
    print(f"\nphotos (years, lighting apart), shipped embedding: same-person pairs min/p50/max "
          f"{out['photos_distances']['same']}, different min/p5/p50 {out['photos_distances']['different']}")
    names = sorted(set(cl.groups))
    means = np.array([e_cl[cl.groups == g].mean(0) for g in names])
    person = np.array([cl.labels[cl.groups == g][0] for g in names])
    Dm = dist(means, means)
    close = sorted((Dm[i, j], names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names)))
    out["closest_clip_means"] = [(round(float(d), 3), a, b) for d, a, b in close[:8]]
    print("closest clip means: " + ", ".join(f"{a}-{b} {d:.3f}" + (" (same person)" if
          person[names.index(a)] == person[names.index(b)] else "") for d, a, b in close[:8]))
    Dc = dist(e_cl, e_cl)
    within, across, diff, iu = pair_split(Dc, cl.labels, cl.groups)
    same_mask = (cl.labels[iu[0]] == cl.labels[iu[1]]) & (cl.groups[iu[0]] == cl.groups[iu[1]])
    pair_yaw = np.maximum(np.abs(yaw[iu[0]]), np.abs(yaw[iu[1]]))[same_mask]
    print(f"\nsame-clip pair distance by the pair's larger |yaw| (regressor; faces' |yaw| up to "
          f"{np.abs(yaw).max():.0f} deg):")
    print("| max |yaw| of the pair | pairs | p50 | p95 | max |")
    print("|---|---|---|---|---|")
    out["by_yaw"] = []
    for lo, hi in ((0, 15), (15, 30), (30, 45), (45, 90)):
        d = within[(pair_yaw >= lo) & (pair_yaw < hi)]
        if len(d):
            out["by_yaw"].append({"yaw": [lo, hi], "pairs": int(len(d)), "p50_p95_max": pct(d, [50, 95, 100])})
            print(f"| {lo}-{hi} | {len(d)} | " + " | ".join(map(str, pct(d, [50, 95, 100]))) + " |")

    r = track_rates(e_cl, cl.labels, cl.groups, dist)
    r["pair_same"], r["pair_diff"] = np.concatenate([within, across]), diff
    print("\ndistances where the thresholds act (p50 / p95 / max of same; min / p5 / p50 of different):")
    for k in ("link_same", "split_same", "pair_same"):
        print(f"  {k}: {pct(r[k], [50, 95, 100])}")
    for k in ("link_diff", "split_diff", "pair_diff"):
        print(f"  {k}: {pct(r[k], [0, 5, 50])}")
    print("\n| threshold | track-mean false link | track-mean missed link | sample false split | sample missed jump "
          "| pair false link | pair missed |")
    print("|---|---|---|---|---|---|---|")
    out["sweep"] = []
    for t in np.arange(0.16, 0.441, 0.02):
        q = rates_at(r, float(t))
        out["sweep"].append({"threshold": round(float(t), 2), **q})
        print(f"| {t:.2f} | {q['false_link']:.3f} | {q['missed_link']:.3f} | {q['false_split']:.3f} | "
              f"{q['missed_jump']:.3f} | {q['pair_false_link']:.4f} | {q['pair_missed']:.4f} |")
    chosen = {"SAME_PERSON_MAX": ident.SAME_PERSON_MAX, "SPLIT_MIN": ident.SPLIT_MIN, "MIN_FACE_PX": ident.MIN_FACE_PX}
    out["chosen"] = chosen
    out["at_chosen"] = {"same_person_max": rates_at(r, ident.SAME_PERSON_MAX),
                        "split_min": rates_at(r, ident.SPLIT_MIN)}
    print(f"\nshipped: {chosen}; at SAME_PERSON_MAX: {out['at_chosen']['same_person_max']}; "
          f"at SPLIT_MIN: {out['at_chosen']['split_min']}")

    # --- face size: a clip's frames shrunk, against its full-size mean and other persons' means
    sub = np.concatenate([np.flatnonzero(cl.groups == g)[::2] for g in sorted(set(cl.groups))])
    small_faces = Faces([cl.images[i] for i in sub], cl.boxes[sub], cl.points[sub], cl.labels[sub], cl.groups[sub])
    print(f"\nface size ({len(sub)} frames shrunk; distance to own full-size clip mean / to other persons' means; "
          f"rates at SAME_PERSON_MAX {ident.SAME_PERSON_MAX} and SPLIT_MIN {ident.SPLIT_MIN}):")
    print("| box side (px) | own p50 / p95 | others min / p5 | own >= SPLIT_MIN | own >= SAME_PERSON_MAX "
          "| others < SAME_PERSON_MAX |")
    print("|---|---|---|---|---|---|")
    out["sizes"] = []
    for side in [float(s) for s in args.sizes.split(",")]:
        images, boxes = shrunk(small_faces, side)
        E = np.concatenate([model.embed(rule.cut(img, box[None])) for img, box in zip(images, boxes)])
        D = dist(E, means)
        own_mask = small_faces.labels[:, None] == person[None, :]
        own = D[np.arange(len(E)), [names.index(g) for g in small_faces.groups]]
        others = D[~own_mask]
        row = {"side": side, "own": pct(own, [50, 95]), "others": pct(others, [0, 5]),
               "own_split": float(np.mean(own >= ident.SPLIT_MIN)),
               "own_unlinked": float(np.mean(own >= ident.SAME_PERSON_MAX)),
               "others_linked": float(np.mean(others < ident.SAME_PERSON_MAX))}
        out["sizes"].append(row)
        print(f"| {side:.0f} | {'/'.join(map(str, row['own']))} | {'/'.join(map(str, row['others']))} | "
              f"{row['own_split']:.3f} | {row['own_unlinked']:.3f} | {row['others_linked']:.4f} |", flush=True)

    out["cost"] = cost(model, cl, rule)
    c = out["cost"]
    print(f"\ncost per face, one thread: cut {c['cut_ms']:.2f} ms; embed {c['embed_cpu_ms_batch1']:.1f} ms CPU "
          f"({c['embed_ms_batch1']:.1f} ms wall) at batch 1, {c['embed_cpu_ms_batch8']:.1f} ms CPU "
          f"({c['embed_ms_batch8']:.1f} ms wall) at batch 8")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"({out['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
