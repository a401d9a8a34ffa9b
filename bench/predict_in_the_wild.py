"""Pose in the wild through ``facestream predict --json``: the path an outside evaluation takes.

``facestream evaluate`` scores the network on the label builder's crops, in process. An
independent check of the AFLW2000-3D kind does something else: it hands whole images to
``facestream predict --json``, which detects, crops, reads (mirror-averaged, as the
checkpoint asks) and prints one JSON object per face; the checker keeps the face in the
middle of each image and compares its angles. Any difference between the two paths (a
detector box the label builder did not use, a face missed, a second face picked, a sign or
decomposition in the JSON) would show only there, so this bench walks that path on faces
the model never trained on: the held-out AFLW images (``wild_labels.heldout``, the split of
``data/labels/aflw_heldout.npz``).

Each held-out 120-px AFLW crop is enlarged ``--upscale`` times (bicubic) and centred on a
black ``--canvas``-pixel square: with the defaults (3, 450) the face box is about 230 px of
a 450-px image, as in AFLW2000-3D's 450-px images. ``--face-px N`` scales each crop so its
face is about N px instead (area averaging below 1x): how small a face ``predict`` still
finds and reads, detector and crop warp included. All of
them go to one ``facestream predict --json`` process. Printed per |yaw| bin: the share of
images with a face found, with more than one face, the yaw MAE against AFLW's yaw (angles
in the plausible form, workers/pose.py), and beside it the in-process number of
``facestream evaluate`` from ``docs/accuracy.json`` when that file scored the same split;
with the label file present, also pose against the label (yaw / pitch / roll).

FER2013's held-out faces (``--set fer``) go in as they come, 48-px images that are all
face, as a dataset user would hand them over: printed are the share ``predict`` finds
and the 5-NN emotion accuracy of its 29 expression coefficients (``evaluate``'s protocol,
evaluate_wild.separability) beside ``evaluate``'s in-process number.

    .venv/bin/python bench/predict_in_the_wild.py [--set aflw|fer|both] [--limit N] [--checkpoint DIR] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402
from training.evaluate_wild import AFLW_FACE_PX, bins, separability  # noqa: E402
from training.wild_data import AFLW, FER, WildSet  # noqa: E402
from training.wild_labels import heldout  # noqa: E402
from workers.padded_retry import on_canvas  # noqa: E402
from workers.pose import angle_error, plausible_euler  # noqa: E402

LABELS = REPO / "data" / "labels" / "aflw_heldout.npz"
FER_LABELS = REPO / "data" / "labels" / "fer_heldout.npz"
ACCURACY = REPO / "docs" / "accuracy.json"


def framed(image: np.ndarray, upscale: float, canvas: int) -> np.ndarray:
    """The crop scaled ``upscale`` times, centred on a black ``canvas`` square (RGB)."""
    return on_canvas(image, canvas, share=image.shape[0] * upscale / canvas)[0]


def central_faces(lines: list[str], paths: list[Path], side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image of ``side`` pixels: (yaw, pitch, roll) and the 29 expression coefficients of
    the face whose box centre is nearest the image centre (NaN where none was found), and
    how many faces ``predict`` printed."""
    index = {str(p): i for i, p in enumerate(paths)}
    euler = np.full((len(paths), 3), np.nan)
    eta = np.full((len(paths), 29), np.nan)
    dist = np.full(len(paths), np.inf)
    count = np.zeros(len(paths), np.int64)
    for line in lines:
        face = json.loads(line)
        i = index[face["image"]]
        count[i] += 1
        b = face["box"]
        d = np.hypot((b[0] + b[2]) / 2 - side / 2, (b[1] + b[3]) / 2 - side / 2)
        if d < dist[i]:
            dist[i] = d
            euler[i] = [face["pose"][k] for k in ("yaw", "pitch", "roll")]
            eta[i] = face["expression"]
    return euler, eta, count


def predict(images: np.ndarray, names: np.ndarray, checkpoint: str | None) -> tuple[list[str], list[Path], float]:
    """``facestream predict --json`` over the images, written as PNG files (lossless):
    its output lines, the paths it was given, and the seconds it took."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"{n.replace('/', '_')}.png" for n in names]
        for p, image in zip(paths, images):
            cv2.imwrite(str(p), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        command = [str(REPO / ".venv" / "bin" / "facestream"), "predict", "--json", *map(str, paths)]
        if checkpoint:
            command[3:3] = ["--checkpoint", checkpoint]
        t0 = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if done.returncode not in (0, 7):
        raise RuntimeError(f"facestream predict exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout.splitlines(), paths, seconds


def in_process(limit: int | None, labels: Path) -> dict | None:
    """``facestream evaluate``'s numbers for a label file from docs/accuracy.json, when
    they scored the whole held-out split (not comparable to a --limit subset)."""
    if limit is not None or not ACCURACY.exists():
        return None
    return json.loads(ACCURACY.read_text()).get(f"wild:{labels.name}")


def label_euler(names: np.ndarray) -> np.ndarray | None:
    """The label file's pose label per name (NaN where it kept no face), if it exists."""
    if not LABELS.exists():
        return None
    d = np.load(LABELS)
    keep = d["keep"]
    by_name = dict(zip(d["name"][keep].astype(str), d["euler"][keep]))
    return np.array([by_name.get(n, (np.nan,) * 3) for n in names], np.float64)


def held_out(ws: WildSet, limit: int | None) -> dict:
    data = ws.read()
    rows = np.flatnonzero(heldout(data["name"]))
    if limit is not None and limit < len(rows):   # spread over the file: FER's rows come sorted by emotion
        rows = rows[np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    return {k: v[rows] for k, v in data.items()}


def aflw(args) -> dict:
    """Pose by |yaw| bin through ``predict``, beside ``evaluate``'s (module docstring)."""
    d = held_out(AFLW, args.limit)
    upscale = args.upscale if args.face_px is None else args.face_px / AFLW_FACE_PX
    images = np.stack([framed(im, upscale, args.canvas) for im in d["image"]])
    lines, paths, seconds = predict(images, d["name"], args.checkpoint)
    euler, _eta, count = central_faces(lines, paths, args.canvas)
    found = np.isfinite(euler[:, 0])
    euler = plausible_euler(euler)
    yaw_err = angle_error(np.nan_to_num(euler[:, 0]), d["yaw"])
    label = label_euler(d["name"])
    pose_err = None if label is None else angle_error(np.nan_to_num(euler), plausible_euler(label))
    res = None if args.face_px is not None else in_process(args.limit, LABELS)
    reference = None if res is None else {k: v["model"]["yaw_mae_vs_aflw"] for k, v in res["yaw_bins"].items()}

    out: dict = {"set": "aflw", "faces": int(len(paths)), "seconds": round(seconds, 1),
                 "upscale": upscale, "face_px": AFLW_FACE_PX * upscale, "canvas": args.canvas, "bins": {}}
    print(f"{len(paths)} held-out AFLW faces, framed {upscale:.2f}x on {args.canvas} px (faces about "
          f"{AFLW_FACE_PX * upscale:.0f} px), through "
          f"`facestream predict --json` in {seconds:.0f} s ({len(paths) / seconds:.1f} images/s)")
    print("| \\|yaw\\| (AFLW) | faces | found | >1 face | yaw MAE vs AFLW: predict / evaluate | "
          "pose vs label y / p / r, mean |")
    print("|---|---|---|---|---|---|")
    for name, m in bins(d["yaw"]).items():
        f = m & found
        row = {"faces": int(m.sum()), "found": float(f.sum() / max(m.sum(), 1)),
               "more_than_one": float((count[m] > 1).mean()) if m.any() else 0.0,
               "yaw_mae_vs_aflw": float(yaw_err[f].mean()) if f.any() else None,
               "evaluate_yaw_mae_vs_aflw": None if reference is None else reference.get(name)}
        keep = f & (np.isfinite(label).all(1) if label is not None else False)
        if pose_err is not None and keep.any():
            row["pose_mae_vs_label"] = [float(v) for v in pose_err[keep].mean(0)]
        out["bins"][name] = row
        fmt = lambda v: "-" if v is None else f"{v:.1f}"
        pose = row.get("pose_mae_vs_label")
        pose_s = "-" if pose is None else " / ".join(f"{v:.1f}" for v in pose) + f", {np.mean(pose):.1f}"
        print(f"| {name} | {row['faces']} | {row['found']:.1%} | {row['more_than_one']:.1%} | "
              f"{fmt(row['yaw_mae_vs_aflw'])} / {fmt(row['evaluate_yaw_mae_vs_aflw'])} | {pose_s} |")
    return out


def fer(args) -> dict:
    """FER2013's held-out faces as they come (48 px, the face filling the image) through
    ``predict``: the share found, and the 5-NN emotion accuracy of its expression output
    (``evaluate_wild.separability``) beside ``evaluate``'s on the label file's faces."""
    d = held_out(FER, args.limit)
    lines, paths, seconds = predict(d["image"], d["name"], args.checkpoint)
    _euler, eta, count = central_faces(lines, paths, FER.frame)
    found = np.isfinite(eta[:, 0])
    sep = separability(eta[found], d["emotion"][found]) if found.sum() > 5 else None
    res = in_process(args.limit, FER_LABELS)
    out = {"set": "fer", "faces": int(len(paths)), "seconds": round(seconds, 1), "found": float(found.mean()),
           "more_than_one": float((count > 1).mean()), "five_nn": sep,
           "evaluate_five_nn": None if res is None else {k: res["model_eta"][k] for k in ("n", "accuracy")}}
    print(f"{len(paths)} held-out FER2013 faces ({FER.frame} px, as they come) through "
          f"`facestream predict --json` in {seconds:.0f} s: found {found.mean():.1%}, more than one face "
          f"{(count > 1).mean():.1%}")
    if sep is not None:
        ref = out["evaluate_five_nn"]
        print(f"5-NN emotion accuracy on predict's expression: {sep['accuracy']:.3f} ± {sep['accuracy_se']:.3f} "
              f"({sep['n']} faces); evaluate, in process: "
              + ("-" if ref is None else f"{ref['accuracy']:.3f} ({ref['n']} faces)"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=("aflw", "fer", "both"), default="both")
    ap.add_argument("--limit", type=int, help="only N held-out faces of each set, spread over its rows")
    ap.add_argument("--upscale", type=float, default=3, help="AFLW: enlargement of each crop")
    ap.add_argument("--face-px", type=float, help="AFLW: scale each crop so its face is about this size instead")
    ap.add_argument("--canvas", type=int, default=450, help="AFLW: side of the image it is centred on")
    ap.add_argument("--checkpoint", help="default: the shipped one")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    runs = {"aflw": [aflw], "fer": [fer], "both": [aflw, fer]}[args.set]
    out = {"machine": machine(), "sets": []}
    for run in runs:
        out["sets"].append(run(args))
        print()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
