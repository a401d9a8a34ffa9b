"""How small a face can be: pose and emotion against face size, on held-out faces in the wild.

A 1080p crowd, a wide shot of a meeting room, a webcam across a lab: the faces users send
are often far smaller than the 76-px AFLW and 48-px FER2013 faces the numbers in
docs/accuracy.md are measured on. The config has two size floors, the detector's
``detector.min_face_px`` (20: smaller boxes are dropped) and ``emotion.min_face_px`` (24:
smaller faces read ``too_small``), and this is the measurement they should rest on.

Each held-out face of ``data/labels/aflw_heldout.npz`` and ``fer_heldout.npz`` (never
trained on) is shown as it would look at a smaller size: its context crop is shrunk
(area averaging, as a sensor integrates) until the face's detector box is ``SIZE`` pixels
on its shorter side, then enlarged back (bilinear, as the crop warp enlarges a small face),
and the network reads it as shipped (mirror-averaged). Faces already smaller than ``SIZE``
stay as they are. Per size it prints, for AFLW, the yaw MAE against AFLW's yaw and the
pose MAE against the label, and for FER2013 the 5-NN accuracy of eta (evaluate_wild's
protocol) and the shipped emotion classifier's accuracy, macro-F1 and, at the configured
``emotion.min_prob``, the share of faces it labels and their accuracy.

    .venv/bin/python bench/face_size_accuracy.py [--sizes 64,48,32,24,20,16,12] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402
from training.data import context_rule  # noqa: E402
from training.evaluate_wild import load, macro_f1, separability  # noqa: E402
from training.metrics import predict_samples  # noqa: E402
from workers import checkpoint, emotion  # noqa: E402
from workers.crops import CropRule, crop_affines  # noqa: E402
from workers.emotion_labels import EmotionSource  # noqa: E402
from workers.mirror import for_inference  # noqa: E402
from workers.pose import angle_error, plausible_euler  # noqa: E402

LABELS = REPO / "data" / "labels"


def box_side_in_context(box: np.ndarray, ctx: int) -> tuple[np.ndarray, np.ndarray]:
    """Per face: the detector box's shorter side in source pixels, and in context-crop pixels
    (the label builder cut each context crop around ``box`` with the enlarged crop rule)."""
    box = np.asarray(box, np.float64)
    side = np.minimum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    source_per_ctx = crop_affines(box, context_rule(CropRule(), ctx))[:, 0, 0]
    return side, side / source_per_ctx


def at_size(crops: np.ndarray, side_source: np.ndarray, side_ctx: np.ndarray, size: float) -> np.ndarray:
    """Context crops as they would look with the face ``size`` px on its shorter side
    (module docstring); faces not larger than that are returned unchanged."""
    out = crops.copy()
    ctx = crops.shape[1]
    for i in np.flatnonzero(side_source > size):
        small = max(2, int(round(ctx * size / side_ctx[i])))
        shrunk = cv2.resize(crops[i], (small, small), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(shrunk, (ctx, ctx), interpolation=cv2.INTER_LINEAR)
    return out


class Reader:
    """The shipped network and classifier over one label file's faces, at any size."""

    def __init__(self, model, size: int, classifier, path: Path):
        self.model, self.size, self.classifier = model, size, classifier
        self.data, self.ex = load(path)
        self.side_source, self.side_ctx = box_side_in_context(self.ex["box"], self.ex["ctx"])

    def predict(self, size: float | None) -> dict:
        data = dict(self.data)
        if size is not None:
            data["crop"] = at_size(data["crop"], self.side_source, self.side_ctx, size)
        P, _ = predict_samples(self.model, data, self.size)
        return P


def aflw_row(reader: Reader, P: dict) -> dict:
    e = plausible_euler(P["euler"])
    label = plausible_euler(reader.ex["euler"])
    return {"yaw_mae_vs_aflw": float(angle_error(e[:, 0], reader.ex["aflw_yaw"]).mean()),
            "pose_mae_vs_label": float(angle_error(e, label).mean())}


def fer_row(reader: Reader, P: dict, min_prob: float) -> dict:
    y = np.asarray(reader.ex["emotion"]).astype(str)
    row = {"five_nn": separability(P["expression"], y)["accuracy"]}
    if reader.classifier is not None:
        probs = reader.classifier.probs(P["expression"])
        pred = np.asarray(emotion.CLASSES)[probs.argmax(1)]
        sure = probs.max(1) >= min_prob
        row.update(classifier_accuracy=float(np.mean(pred == y)), classifier_macro_f1=macro_f1(y, pred)[0],
                   labelled=float(sure.mean()), labelled_accuracy=float(np.mean(pred[sure] == y[sure])))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,48,32,24,20,16,12",
                    help="face sizes to show (shorter side of the detector box, px)")
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.default_path())
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    sizes: list[float | None] = [None] + [float(s) for s in args.sizes.split(",")]
    min_prob = EmotionSource.ETA.min_prob   # the default threshold of the reader it measures
    network, meta = checkpoint.load(args.checkpoint)
    shipped = (for_inference(network, meta), int(meta["crop"]["size"]), emotion.load(args.checkpoint, required=False))
    aflw = Reader(*shipped, LABELS / "aflw_heldout.npz")
    fer = Reader(*shipped, LABELS / "fer_heldout.npz")
    med = lambda r: float(np.median(r.side_source))
    print(f"held out: {len(aflw.side_source)} AFLW faces (median box side {med(aflw):.0f} px), "
          f"{len(fer.side_source)} FER2013 faces ({med(fer):.0f} px); shipped reading, min_prob {min_prob}")
    print("| face size (px) | AFLW yaw MAE vs AFLW | AFLW pose vs label | FER 5-NN on eta | "
          "FER classifier accuracy / macro-F1 | labelled at min_prob / their accuracy |")
    print("|---|---|---|---|---|---|")
    out: dict = {"machine": machine(), "checkpoint": str(args.checkpoint), "min_prob": min_prob, "rows": []}
    t0 = time.perf_counter()
    for size in sizes:
        row = {"size": size, "aflw": aflw_row(aflw, aflw.predict(size)),
               "fer": fer_row(fer, fer.predict(size), min_prob)}
        out["rows"].append(row)
        a, f = row["aflw"], row["fer"]
        clf = (f"{f['classifier_accuracy']:.3f} / {f['classifier_macro_f1']:.3f} | "
               f"{f['labelled']:.0%} / {f['labelled_accuracy']:.3f}") if "labelled" in f else "- | -"
        print(f"| {'as they are' if size is None else f'{size:.0f}'} | {a['yaw_mae_vs_aflw']:.1f} | "
              f"{a['pose_mae_vs_label']:.1f} | {f['five_nn']:.3f} | {clf} |", flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
