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
black ``--canvas``-pixel square, written as a JPEG (quality 95): with the defaults (3, 450)
the face box is about 230 px of a 450-px image, as in AFLW2000-3D's 450-px images. All of
them go to one ``facestream predict --json`` process. Printed per |yaw| bin: the share of
images with a face found, with more than one face, the yaw MAE against AFLW's yaw (angles
in the plausible form, workers/pose.py), and beside it the in-process number of
``facestream evaluate`` from ``docs/accuracy.json`` when that file scored the same split;
with the label file present, also pose against the label (yaw / pitch / roll).

    .venv/bin/python bench/predict_in_the_wild.py [--limit N] [--checkpoint DIR] [--json OUT]
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
from workers.pose import angle_error, plausible_euler  # noqa: E402
from workers.training.evaluate_wild import bins  # noqa: E402
from workers.training.wild_data import AFLW  # noqa: E402
from workers.training.wild_labels import heldout  # noqa: E402

LABELS = REPO / "data" / "labels" / "aflw_heldout.npz"
ACCURACY = REPO / "docs" / "accuracy.json"


def framed(image: np.ndarray, upscale: int, canvas: int) -> np.ndarray:
    """The crop enlarged ``upscale`` times, centred on a black ``canvas`` square (RGB)."""
    side = image.shape[0] * upscale
    off = (canvas - side) // 2
    out = np.zeros((canvas, canvas, 3), np.uint8)
    out[off:off + side, off:off + side] = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    return out


def central_faces(lines: list[str], paths: list[Path], canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (yaw, pitch, roll) of the face whose box centre is nearest the image
    centre (NaN where none was found), and how many faces ``predict`` printed."""
    index = {str(p): i for i, p in enumerate(paths)}
    euler = np.full((len(paths), 3), np.nan)
    dist = np.full(len(paths), np.inf)
    count = np.zeros(len(paths), np.int64)
    for line in lines:
        face = json.loads(line)
        i = index[face["image"]]
        count[i] += 1
        b = face["box"]
        d = np.hypot((b[0] + b[2]) / 2 - canvas / 2, (b[1] + b[3]) / 2 - canvas / 2)
        if d < dist[i]:
            dist[i] = d
            euler[i] = [face["pose"][k] for k in ("yaw", "pitch", "roll")]
    return euler, count


def in_process(limit: int | None) -> dict | None:
    """``facestream evaluate``'s AFLW numbers from docs/accuracy.json, when they scored
    the whole held-out split (not comparable to a --limit subset)."""
    if limit is not None or not ACCURACY.exists():
        return None
    res = json.loads(ACCURACY.read_text()).get(f"wild:{LABELS.name}")
    return None if res is None else {k: v["model"]["yaw_mae_vs_aflw"] for k, v in res["yaw_bins"].items()}


def label_euler(names: np.ndarray) -> np.ndarray | None:
    """The label file's pose label per name (NaN where it kept no face), if it exists."""
    if not LABELS.exists():
        return None
    d = np.load(LABELS)
    keep = d["keep"]
    by_name = dict(zip(d["name"][keep].astype(str), d["euler"][keep]))
    return np.array([by_name.get(n, (np.nan,) * 3) for n in names], np.float64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, help="only the first N held-out faces")
    ap.add_argument("--upscale", type=int, default=3)
    ap.add_argument("--canvas", type=int, default=450)
    ap.add_argument("--checkpoint", help="default: the shipped one")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)

    data = AFLW.read()
    held = np.flatnonzero(heldout(data["name"]))[:args.limit]
    names, yaw = data["name"][held], data["yaw"][held]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"{n.replace('/', '_')}" for n in names]
        for p, image in zip(paths, data["image"][held]):
            cv2.imwrite(str(p), cv2.cvtColor(framed(image, args.upscale, args.canvas), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        command = [str(REPO / ".venv" / "bin" / "facestream"), "predict", "--json", *map(str, paths)]
        if args.checkpoint:
            command[3:3] = ["--checkpoint", args.checkpoint]
        t0 = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if done.returncode not in (0, 7):
        print(done.stderr.strip()[-2000:], file=sys.stderr)
        return done.returncode
    euler, count = central_faces(done.stdout.splitlines(), paths, args.canvas)
    found = np.isfinite(euler[:, 0])
    euler = plausible_euler(euler)
    yaw_err = angle_error(np.nan_to_num(euler[:, 0]), yaw)
    label = label_euler(names)
    pose_err = None if label is None else angle_error(np.nan_to_num(euler), plausible_euler(label))
    reference = in_process(args.limit)

    out: dict = {"machine": machine(), "faces": int(len(names)), "seconds": round(seconds, 1),
                 "upscale": args.upscale, "canvas": args.canvas, "bins": {}}
    print(f"{len(names)} held-out AFLW faces, framed {args.upscale}x on {args.canvas} px, through "
          f"`facestream predict --json` in {seconds:.0f} s ({len(names) / seconds:.1f} images/s)")
    print("| \\|yaw\\| (AFLW) | faces | found | >1 face | yaw MAE vs AFLW: predict / evaluate | "
          "pose vs label y / p / r, mean |")
    print("|---|---|---|---|---|---|")
    for name, m in bins(yaw).items():
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
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
